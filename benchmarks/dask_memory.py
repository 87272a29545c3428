"""Peak memory of a convolution stack over an image bigger than it: convscope.dask streams
a 20000 x 20000 float32 image (1.6 GB) through Conv2d/ReLU/Conv2d/MaxPool2d chunk by chunk.

    python benchmarks/dask_memory.py                 # 20000 x 20000, chunks of 1024
    python benchmarks/dask_memory.py --size 4000     # a quicker run

The input is ``dask.array.random`` (never materialised); the result (4 channels) is reduced
to per-channel sums and means, so nothing of image size is ever held.  The top-left corner of
the result is checked against the single-machine module on the matching input crop.  Prints
the peak resident set size of the process (``ru_maxrss``), which includes Python, NumPy and
dask themselves.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="image side (default 20000)")
    parser.add_argument("--chunk", type=int, default=1024, help="chunk side (default 1024)")
    parser.add_argument("--workers", type=int, default=2, help="threads (default 2)")
    parser.add_argument(
        "--workspace-mb", type=int, help="convscope's per-op scratch budget (default 512 MiB)"
    )
    args = parser.parse_args(argv)

    import dask
    import dask.array as da

    import convscope as cs
    import convscope.dask as csd
    import convscope.nn as nn

    if args.workspace_mb:
        cs.set_workspace_budget(args.workspace_mb << 20)
    cs.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.MaxPool2d(2),
    )
    rng = da.random.default_rng(0)
    shape = (1, 1, args.size, args.size)
    x = rng.random(shape, dtype=np.float32, chunks=(1, 1, args.chunk, args.chunk))
    y = csd.apply(net, x)
    print(f"input {shape} float32 = {x.nbytes / 1e9:.2f} GB in chunks of {args.chunk}^2")
    print(f"output {y.shape} {y.dtype} = {y.nbytes / 1e9:.2f} GB, {y.npartitions} blocks")
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        sums, corner, crop = dask.compute(
            y.sum(axis=(0, 2, 3), dtype=np.float64), y[:, :, :32, :32], x[:, :, :160, :160]
        )
    seconds = time.perf_counter() - start
    reference = net(cs.tensor(crop)).numpy()[:, :, :32, :32]
    agree = float(np.abs(corner - reference).max())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"channel means {np.round(sums / np.prod(y.shape[2:]), 6).tolist()}")
    print(f"corner vs single-machine module: max |difference| = {agree:.3g}")
    print(f"time {seconds:.1f} s with {args.workers} threads; peak RSS {peak:.0f} MB")
    return 0 if agree < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
