"""The tiling helpers of the engine's per-call paths."""


def test_strided_view_is_as_strided_on_contiguous_and_other_arrays():
    """``strided_view`` gives NumPy's ``as_strided`` view (same values, shares memory, writes
    go through, read-only on request) for C-contiguous arrays, views of part of a buffer and
    non-contiguous arrays."""
    import numpy as np
    from numpy.lib.stride_tricks import as_strided

    from convscope.ops import tiling

    base = np.arange(60.0).reshape(3, 4, 5)
    for a in (base, base[1:], base[:, ::2]):
        shape, strides = (2, 2, 3), (a.strides[0], a.strides[1], a.strides[2])
        view = tiling.strided_view(a, shape, strides)
        np.testing.assert_array_equal(view, as_strided(a, shape=shape, strides=strides))
        assert np.shares_memory(view, a)
        view[0, 0, 0] = -1.0
        assert a[0, 0, 0] == -1.0
        assert not tiling.strided_view(a, shape, strides, writeable=False).flags.writeable
