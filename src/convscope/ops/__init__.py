"""Array-level kernels on NumPy arrays, without autograd: convolution, padding, workspace.

Submodules: ``conv`` (the primitive), ``pad``, ``tiling``, ``workspace`` and the algorithms.
"""

from .conv import ALGORITHMS, conv_general, select_algorithm
from .workspace import get_workspace_budget, set_workspace_budget, workspace_budget

__all__ = [
    "ALGORITHMS",
    "conv_general",
    "get_workspace_budget",
    "select_algorithm",
    "set_workspace_budget",
    "workspace_budget",
]
