"""Which layers of a model have outputs worth looking at.

Conv, pool and dense layers; Flatten only re-orders the last conv layer's values and Dropout
passes its input on unchanged at evaluation time. `cnnscope activations --layer all` and the
demo report's activation grids show these layers.
"""

from __future__ import annotations

from cnnscope.nn.model import CNN

VIEWABLE_KINDS = ("conv", "pool", "dense")


def viewable_layers(model: CNN) -> list[str]:
    """The names of the model's conv, pool and dense layers, in network order."""
    return model.layers_of_kind(*VIEWABLE_KINDS)
