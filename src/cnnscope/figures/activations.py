"""Pictures of what a layer does: every map (or node) of a layer as a grid, beside the digit.

`layer_figure` draws one layer for one or more images, `layer_figures` several layers from one
forward pass. They return RGB arrays plus the numbers behind them and write no files (the
`activations` command and the demo report do). The drawing primitives are in
`cnnscope.figures.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cnnscope.analysis.evaluation import predict_images
from cnnscope.analysis.layers import viewable_layers
from cnnscope.data.images import DigitImage, to_batch
from cnnscope.errors import UserError, check_choice
from cnnscope.figures import render
from cnnscope.nn.model import CNN, activations
from cnnscope.runtime import device_of

DIGIT_FACTOR = 4  # the input digit is shown 4x (112 px for 28x28)
TILE_TARGET = 56  # a map is upscaled to about this many pixels
NODE_CELL = 28  # a dense node is a square of this many pixels
BIG_LAYER_NODES = 256  # dense/flatten layers with more nodes: 32 per row, 12-px cells
MAX_PANELS = 12  # images side by side in one figure
SCALE_NOTES = {"per_map": "each map scaled to its own min..max",
               "standardize": "each map standardised, clipped at +-2 std"}


@dataclass
class LayerFigure:
    """One layer's picture for one or more images, and where each panel's grid sits in it."""

    layer: str
    image: np.ndarray
    layout: render.GridLayout
    grid_origins: list[tuple[int, int]]
    color_scale: render.ColorScale
    stats: list[dict] = field(default_factory=list)

    def _repr_png_(self) -> bytes:
        """The picture as PNG bytes: a layer figure shows itself in Jupyter."""
        from io import BytesIO

        buffer = BytesIO()
        render.to_pil(self.image).save(buffer, format="PNG")
        return buffer.getvalue()

    def pixel_center(self, panel: int, index: int, y: int = 0, x: int = 0) -> tuple[int, int]:
        """Picture coordinates (row, column) of pixel (y, x) of map/node `index` in panel `panel`."""
        cy, cx = self.layout.pixel_center(index, y, x)
        oy, ox = self.grid_origins[panel]
        return oy + cy, ox + cx


def image_caption(image: DigitImage, probabilities: np.ndarray | None = None) -> str:
    """The text under a digit: its name, its label and the network's prediction (if given)."""
    lines = [image.name]
    if image.label is not None:
        lines.append(f"label {image.label}")
    if probabilities is not None:
        best = int(np.argmax(probabilities))
        lines.append(f"predicted {best} ({probabilities[best]:.1%})")
    return "\n".join(lines)


def grid_options(shape: tuple[int, ...], columns: int | None = None) -> tuple[int, int]:
    """(columns, upscale factor) for a layer output of `shape` (C x H x W or C)."""
    if len(shape) == 3:
        return columns or 8, render.tile_factor(max(shape[1:]), TILE_TARGET)
    if shape[0] > BIG_LAYER_NODES:
        return columns or 32, 12
    return columns or 8, NODE_CELL


def layer_title(model: CNN, layer: str) -> str:
    """"Conv2D_1 (conv 3x3, relu): 32 maps of 26x26" and the like."""
    spec = model.layer_spec(layer)
    shape = model.output_shape(layer)
    what = f"{shape[0]} maps of {shape[1]}x{shape[2]}" if len(shape) == 3 else f"{shape[0]} nodes"
    return f"{layer} ({_kind_text(spec)}): {what}"


def _kind_text(spec) -> str:
    """"conv 3x3, relu" for a `CNN` layer; a `from_torch` layer describes its module itself."""
    if hasattr(spec, "description"):
        return f"{spec.kind}, {spec.description}"
    return {"conv": f"conv {spec.kernel[0]}x{spec.kernel[1]}, {spec.activation}", "pool": f"max-pool {spec.kernel[0]}x{spec.kernel[1]}",
            "dense": f"dense, {'logits' if spec.activation == 'softmax' else spec.activation}", "flatten": "flatten",
            "dropout": "dropout"}[spec.kind]


def layer_figure(model: CNN, images: Sequence[DigitImage], layer: str, *, cmap: str = "viridis",
                 scale: str = "shared", numbers: bool = False, columns: int | None = None,
                 values: np.ndarray | None = None, probabilities: np.ndarray | None = None,
                 vmin: float | None = None, vmax: float | None = None) -> LayerFigure:
    """All maps (or nodes) of `layer` for each image: the digit beside its grid, a colour bar.

    Args:
        model: the network.
        images: up to MAX_PANELS digits, drawn side by side.
        layer: the layer's name.
        cmap, numbers, columns: colour map, map numbers in the tiles, tiles per row.
        scale: "shared" (one colour range for all maps and images), "per_map" or "standardize".
        values, probabilities: the layer's outputs (N x ...) and the class probabilities, if
            already computed.
        vmin, vmax: the shared colour range (default: the values' min and max).

    Returns:
        The picture with its layout, colour scale and per-image numbers.
    """
    _check_request(model, images, layer, scale, cmap)
    if values is None:
        values = activations(model, to_batch(images, device_of(model)), [layer])[layer].float().cpu().numpy()
    if probabilities is None:
        probabilities = predict_images(model, images)
    values = np.asarray(values, dtype=np.float64)
    columns, factor = grid_options(values.shape[1:], columns)
    if scale == "shared":
        vmin = float(values.min()) if vmin is None else vmin
        vmax = float(values.max()) if vmax is None else vmax
    panels, grid_offsets = [], []
    for image, value, probs in zip(images, values, probabilities, strict=True):
        scaled, color_scale = render.scale_maps(value, scale, vmin, vmax)
        grid_picture, layout = render.map_grid(scaled, cmap, factor, columns, numbers=numbers)
        panel, grid_offset = _digit_beside_grid(image, probs, grid_picture)
        panels.append(panel)
        grid_offsets.append(grid_offset)
    row, panel_offsets = render.stack(panels, axis="h", gap=28)
    bar = render.colorbar(color_scale, cmap, length=min(220, max(80, layout.shape[0] - 24)))
    body, body_offsets = render.stack([row, bar], axis="h", gap=16)
    scale_note = SCALE_NOTES.get(scale, f"one colour scale for all {'images' if len(images) > 1 else 'maps'}")
    title = render.text_block(f"{layer_title(model, layer)} · {scale_note}", size=14)
    picture, offsets = render.stack([title, body], axis="v", gap=6)
    picture = render.pad(picture, 8, 8, 8, 8)
    top = offsets[1][0] + body_offsets[0][0] + 8
    left = offsets[1][1] + body_offsets[0][1] + 8
    origins = [(top + py + gy, left + px + gx) for (py, px), (gy, gx) in zip(panel_offsets, grid_offsets, strict=True)]
    stats = [layer_stats(image, value, probs) for image, value, probs in zip(images, values, probabilities, strict=True)]
    return LayerFigure(layer, picture, layout, origins, color_scale, stats)


def _check_request(model: CNN, images: Sequence[DigitImage], layer: str, scale: str, cmap: str) -> None:
    """UserError for an unknown layer, scale or colour map, or no or too many images."""
    model.check_layer(layer)
    check_choice("scale", scale, render.SCALES)
    render.colormap_lut(cmap)  # validates the name
    if not images:
        raise UserError("no images to show")
    if len(images) > MAX_PANELS:
        raise UserError(f"at most {MAX_PANELS} images side by side, got {len(images)}")


def _digit_beside_grid(image: DigitImage, probabilities: np.ndarray,
                       grid_picture: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """One panel: the digit with its caption, then the grid; and where the grid sits in it."""
    digit = render.gray_image(image.pixels, DIGIT_FACTOR)
    caption = render.text_block(image_caption(image, probabilities), size=12, width=digit.shape[1])
    digit_column, _ = render.stack([digit, caption], axis="v", gap=4)
    panel, offsets = render.stack([digit_column, grid_picture], axis="h", gap=10)
    return panel, offsets[1]


def layer_stats(image: DigitImage, values: np.ndarray, probabilities: np.ndarray) -> dict:
    """The numbers behind one panel: shape, min/max/mean per map (value per node)."""
    values = np.asarray(values, dtype=np.float64)
    entry = {**image.describe(), "predicted": int(np.argmax(probabilities)),
             "probabilities": [round(float(p), 6) for p in probabilities], "shape": list(values.shape),
             "min": _r(values.min()), "max": _r(values.max()), "mean": _r(values.mean())}
    if values.ndim == 3:
        entry["maps"] = [{"map": i, "min": _r(m.min()), "max": _r(m.max()), "mean": _r(m.mean())} for i, m in enumerate(values)]
    else:
        entry["nodes"] = [{"node": i, "value": _r(v)} for i, v in enumerate(values)]
    return entry


def layer_figures(model: CNN, images: Sequence[DigitImage], layers: Sequence[str] | None = None,
                  **options) -> dict[str, LayerFigure]:
    """`layer_figure` for several layers from one forward pass (which also gives the predictions).

    Args:
        model: the network.
        images: the digits to show.
        layers: layer names (default: `viewable_layers`, every layer but Flatten and Dropout).
        options: passed on to `layer_figure` (cmap, scale, numbers, columns, ...).

    Returns:
        One `LayerFigure` per layer, in the order asked for.
    """
    layers = list(layers) if layers else viewable_layers(model)
    for name in layers:
        model.check_layer(name)
    if not images:
        raise UserError("no images to show")
    last = model.layer_names[-1]
    outputs = activations(model, to_batch(images, device_of(model)), list(dict.fromkeys(layers + [last])))
    probabilities = model.output_probabilities(outputs[last]).float().cpu().numpy()
    return {name: layer_figure(model, images, name, values=outputs[name].float().cpu().numpy(),
                               probabilities=probabilities, **options) for name in layers}


def _r(value) -> float:
    return round(float(value), 5)
