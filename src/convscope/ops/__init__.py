"""Array-level kernels on NumPy arrays, without autograd: convolution, padding, workspace."""

from .conv import ALGORITHMS, conv_general, select_algorithm
from .pad import pad
from .workspace import get_workspace_budget, set_workspace_budget, workspace_budget

__all__ = [
    "ALGORITHMS",
    "conv_general",
    "get_workspace_budget",
    "pad",
    "select_algorithm",
    "set_workspace_budget",
    "workspace_budget",
]
