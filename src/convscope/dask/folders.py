"""Folders of media as tasks: the same work function over many files, in this process or as
dask tasks on a ``distributed`` cluster (a ``LocalCluster`` for ``"local"``, or the scheduler
at an address), with results reported as they complete.

The work functions write their own output files (so the workers must see the same file
system as the client: one machine, or a shared folder) and return small picklable records.

>>> run_tasks([1, 2, 3], abs, scheduler=None)
[1, 2, 3]
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")

#: workers of ``--scheduler local`` when ``--workers`` is not given
DEFAULT_LOCAL_WORKERS = max(1, min(os.cpu_count() or 1, 4))


@contextlib.contextmanager
def cluster_client(scheduler: str, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: on a new ``LocalCluster`` of ``workers`` single-threaded
    worker processes bound to 127.0.0.1 for ``"local"``, else connected to the scheduler at
    ``scheduler`` (``tcp://host:8786``; ``OSError`` when it does not answer in 10 s)."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(
            "--scheduler needs dask's distributed package: pip install 'convscope[dask]'"
        ) from error
    with contextlib.ExitStack() as stack:
        if scheduler == "local":
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers or DEFAULT_LOCAL_WORKERS,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        else:
            client = stack.enter_context(distributed.Client(scheduler, timeout="10s"))
        yield client


def run_tasks(
    tasks: Sequence[Task],
    work: Callable[[Task], Result],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    done: Callable[[Result], None] | None = None,
) -> list[Result]:
    """``[work(t) for t in tasks]``: here when ``scheduler`` is None, else one dask task per
    item on a distributed cluster.  ``done(result)`` runs here as each task finishes (in
    completion order: progress bars, messages); the list is in task order.  ``work`` must be
    importable by the workers (a module-level function) and its arguments picklable; an
    exception it raises is raised here."""
    if scheduler is None:
        results = []
        for task in tasks:
            results.append(work(task))
            if done is not None:
                done(results[-1])
        return results
    from distributed import as_completed

    with cluster_client(scheduler, workers) as client:
        futures = client.map(work, list(tasks), pure=False)
        order = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for future in as_completed(futures):
            result = future.result()
            results[order[future.key]] = result
            if done is not None:
                done(result)
        return results
