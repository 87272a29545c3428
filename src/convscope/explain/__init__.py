"""Learning tools that explain convolutions with the engine's own numbers.

- :func:`element`: one output element written out (window, kernel slice, dot products, bias,
  sum) and checked against the layer's output;
- :func:`layer_table`, :func:`output_shape`, :func:`conv_shape`: a layer's parameters, counts
  and output size with the formula filled in;
- :func:`padding_for`, :func:`output_padding_for`, :func:`restore`: the inverse questions;
- :func:`summary`: a torchinfo-style model summary;
- :func:`tap_map`: which input cell each kernel tap reads, for every output position.

>>> import convscope as cs
>>> from convscope import explain, nn
>>> conv = nn.Conv1d(2, 3, 5)
>>> explain.element(conv, cs.rand(4, 2, 6), (0, 0, 1)).matches
True
"""

from .element import ChannelTerm, DimWindow, Explanation, Tap, element
from .shapes import (
    LayerTable,
    PaddingAnswer,
    RestoreAnswer,
    ShapeAnswer,
    SizeFormula,
    build_layer,
    conv_shape,
    layer_table,
    output_padding_for,
    output_shape,
    padding_for,
    restore,
)
from .summary import LayerRow, Summary, module_mult_adds, summary
from .windows import TapMap, tap_map

__all__ = [
    "ChannelTerm",
    "DimWindow",
    "Explanation",
    "LayerRow",
    "LayerTable",
    "PaddingAnswer",
    "RestoreAnswer",
    "ShapeAnswer",
    "SizeFormula",
    "Summary",
    "Tap",
    "TapMap",
    "build_layer",
    "conv_shape",
    "element",
    "layer_table",
    "module_mult_adds",
    "output_padding_for",
    "output_shape",
    "padding_for",
    "restore",
    "summary",
    "tap_map",
]
