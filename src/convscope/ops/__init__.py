"""Array-level kernels on NumPy arrays, without autograd: convolution, padding, pooling.

Submodules: ``conv`` (the primitive), ``algorithms`` (choosing one), the algorithms
(``unfold_gemm``, ``direct``, ``fft``, ``depthwise``, ``winograd``), ``pad``, ``pool``,
``tiling``, ``workspace`` and ``threads``.  They are imported on first use.
"""
