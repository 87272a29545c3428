"""Pictures of convolutions: kernel grids, feature maps, contact sheets, animations.

matplotlib is imported only when a figure is drawn; figures are ``matplotlib.figure.Figure``
objects on an Agg canvas (no pyplot), saved with :func:`save_figure`.

>>> import numpy as np
>>> import convscope as cs
>>> import convscope.viz as viz
>>> conv = cs.nn.Conv2d(3, 4, 3)
>>> figure = viz.kernel_grid(conv.weight.numpy(), title=repr(conv))
>>> figure.axes[0].get_xlabel(), figure.axes[0].get_ylabel()
('input channel', 'output channel')
"""

from .figures import new_figure, save_figure
from .grids import grid_shape, tile, to_unit_range
from .kernels import filter_gallery, kernel_grid
from .sheets import contact_sheet

__all__ = [
    "contact_sheet",
    "filter_gallery",
    "grid_shape",
    "kernel_grid",
    "new_figure",
    "save_figure",
    "tile",
    "to_unit_range",
]
