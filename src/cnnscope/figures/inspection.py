"""Pictures of what the layers do: activation grids, class patterns, explanations.

Functions here take a model and images and return RGB arrays plus the numbers behind them;
they write no files (the commands and `report_section` do). The drawing primitives are in
`cnnscope.figures.render`, the algorithms in `cnnscope.analysis.patterns` and `cnnscope.analysis.attribution`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cnnscope.analysis.patterns import ClassPatterns, Confusable
from cnnscope.errors import UserError, check_choice
from cnnscope.figures import render
from cnnscope.nn.model import CNN, activations

DIGIT_FACTOR = 4  # the input digit is shown 4x (112 px for 28x28)
TILE_TARGET = 56  # a map is upscaled to about this many pixels
NODE_CELL = 28  # a dense node is a square of this many pixels
BIG_LAYER_NODES = 256  # dense/flatten layers with more nodes: 32 per row, 12-px cells
MAX_PANELS = 12  # images side by side in one figure
RED = (235, 30, 30)
YELLOW = (255, 220, 0)


# ---- the images to look at --------------------------------------------------------------------


@dataclass(frozen=True)
class DigitImage:
    """A 28x28 uint8 digit (white ink on black) and where it came from."""

    pixels: np.ndarray
    name: str
    label: int | None = None
    index: int | None = None
    split: str | None = None

    def describe(self) -> dict:
        return {"name": self.name, "split": self.split, "index": self.index, "label": self.label}


def dataset_images(mnist, indices: Sequence[int], which: str = "test") -> list[DigitImage]:
    """Images of the `which` split by position; UserError naming the valid range."""
    images, labels = mnist.images(which)
    out = []
    for index in indices:
        if not 0 <= int(index) < len(images):
            raise UserError(f"index {index} is out of range for the {which} set: 0..{len(images) - 1}")
        out.append(DigitImage(images[int(index)], f"{which} #{int(index)}", int(labels[int(index)]), int(index), which))
    return out


def file_image(path: str | os.PathLike) -> DigitImage:
    """A picture file made MNIST-style (`cnnscope.data.images`); UserError if unusable."""
    from cnnscope.data.images import load_image_file, mnist_style

    return DigitImage(mnist_style(load_image_file(path)), os.path.basename(os.fspath(path)))


def to_batch(images: Sequence[DigitImage], device: torch.device | str = "cpu") -> torch.Tensor:
    """N x 1 x 28 x 28 float tensor in [0, 1]."""
    from cnnscope.data.mnist import to_tensor

    return to_tensor(np.stack([image.pixels for image in images])).to(device)


def probabilities_from_output(model: CNN, output: torch.Tensor) -> torch.Tensor:
    """The last layer's output -> probabilities, as `model.probabilities` does."""
    return output if model.spec.layers[-1].activation == "sigmoid" else torch.softmax(output, dim=1)


def predict(model: CNN, images: Sequence[DigitImage]) -> np.ndarray:
    """N x classes probabilities."""
    with torch.no_grad():
        return model.probabilities(to_batch(images, _device(model))).float().cpu().numpy()


def image_caption(image: DigitImage, probabilities: np.ndarray | None = None) -> str:
    lines = [image.name]
    if image.label is not None:
        lines.append(f"label {image.label}")
    if probabilities is not None:
        best = int(np.argmax(probabilities))
        lines.append(f"predicted {best} ({probabilities[best]:.1%})")
    return "\n".join(lines)


# ---- activation grids -------------------------------------------------------------------------


@dataclass
class LayerFigure:
    """One layer's picture for one or more images, and where each panel's grid sits in it."""

    layer: str
    image: np.ndarray
    layout: render.GridLayout
    grid_origins: list[tuple[int, int]]
    color_scale: render.ColorScale
    stats: list[dict] = field(default_factory=list)

    def pixel_center(self, panel: int, index: int, y: int = 0, x: int = 0) -> tuple[int, int]:
        """Picture coordinates (row, column) of pixel (y, x) of map/node `index` in panel `panel`."""
        cy, cx = self.layout.pixel_center(index, y, x)
        oy, ox = self.grid_origins[panel]
        return oy + cy, ox + cx


def grid_options(shape: tuple[int, ...], columns: int | None = None) -> tuple[int, int]:
    """(columns, upscale factor) for a layer output of `shape` (C x H x W or C)."""
    if len(shape) == 3:
        return columns or 8, render.tile_factor(max(shape[1:]), TILE_TARGET)
    if shape[0] > BIG_LAYER_NODES:
        return columns or 32, 12
    return columns or 8, NODE_CELL


def layer_title(model: CNN, layer: str) -> str:
    spec = model.layer_spec(layer)
    shape = model.output_shape(layer)
    what = f"{shape[0]} maps of {shape[1]}x{shape[2]}" if len(shape) == 3 else f"{shape[0]} nodes"
    kind = {"conv": f"conv {spec.kernel[0]}x{spec.kernel[1]}, {spec.activation}", "pool": f"max-pool {spec.kernel[0]}x{spec.kernel[1]}",
            "dense": f"dense, {'logits' if spec.activation == 'softmax' else spec.activation}", "flatten": "flatten",
            "dropout": "dropout"}[spec.kind]
    return f"{layer} ({kind}): {what}"


def layer_figure(model: CNN, images: Sequence[DigitImage], layer: str, *, cmap: str = "viridis",
                 scale: str = "shared", numbers: bool = False, columns: int | None = None,
                 values: np.ndarray | None = None, probabilities: np.ndarray | None = None,
                 vmin: float | None = None, vmax: float | None = None) -> LayerFigure:
    """All maps (or nodes) of `layer` for each image: the digit beside its grid, a colour bar.

    With several images the panels stand side by side; `shared` scale uses one colour range
    for all of them. `values` / `probabilities` may be passed if already computed.
    """
    model.check_layer(layer)
    check_choice("scale", scale, render.SCALES)
    render.colormap_lut(cmap)  # validates the name
    if not images:
        raise UserError("no images to show")
    if len(images) > MAX_PANELS:
        raise UserError(f"at most {MAX_PANELS} images side by side, got {len(images)}")
    if values is None:
        values = activations(model, to_batch(images, _device(model)), [layer])[layer].float().cpu().numpy()
    if probabilities is None:
        probabilities = predict(model, images)
    values = np.asarray(values, dtype=np.float64)
    columns, factor = grid_options(values.shape[1:], columns)
    if scale == "shared":
        vmin = float(values.min()) if vmin is None else vmin
        vmax = float(values.max()) if vmax is None else vmax
    panels, layout, color_scale, grid_offsets = [], None, None, []
    for image, value, probs in zip(images, values, probabilities, strict=True):
        scaled, color_scale = render.scale_maps(value, scale, vmin, vmax)
        grid_picture, layout = render.map_grid(scaled, cmap, factor, columns, numbers=numbers)
        digit = render.gray_image(image.pixels, DIGIT_FACTOR)
        caption = render.text_block(image_caption(image, probs), size=12, width=digit.shape[1])
        digit_column, _ = render.stack([digit, caption], axis="v", gap=4)
        panel, offsets = render.stack([digit_column, grid_picture], axis="h", gap=10)
        panels.append(panel)
        grid_offsets.append(offsets[1])
    row, panel_offsets = render.stack(panels, axis="h", gap=28)
    bar = render.colorbar(color_scale, cmap, length=min(220, max(80, layout.shape[0] - 24)))
    body, body_offsets = render.stack([row, bar], axis="h", gap=16)
    scale_note = {"shared": f"one colour scale for all {'images' if len(images) > 1 else 'maps'}",
                  "per_map": "each map scaled to its own min..max",
                  "standardize": "each map standardised, clipped at +-2 std"}[scale]
    title = render.text_block(f"{layer_title(model, layer)} · {scale_note}", size=14)
    picture, offsets = render.stack([title, body], axis="v", gap=6)
    picture = render.pad(picture, 8, 8, 8, 8)
    top = offsets[1][0] + body_offsets[0][0] + 8
    left = offsets[1][1] + body_offsets[0][1] + 8
    origins = [(top + py + gy, left + px + gx) for (py, px), (gy, gx) in zip(panel_offsets, grid_offsets, strict=True)]
    stats = [layer_stats(image, value, probs) for image, value, probs in zip(images, values, probabilities, strict=True)]
    return LayerFigure(layer, picture, layout, origins, color_scale, stats)


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


def all_layers(model: CNN, skip_flatten: bool = True) -> list[str]:
    """Every layer worth a grid (Flatten only re-orders the last conv layer's values)."""
    return [name for name in model.layer_names if not (skip_flatten and model.layer_spec(name).kind in ("flatten", "dropout"))]


def layer_figures(model: CNN, images: Sequence[DigitImage], layers: Sequence[str] | None = None,
                  **options) -> dict[str, LayerFigure]:
    """`layer_figure` for several layers (default: all but Flatten) from one forward pass
    (which also gives the predictions)."""
    layers = list(layers) if layers else all_layers(model)
    for name in layers:
        model.check_layer(name)
    if not images:
        raise UserError("no images to show")
    last = model.layer_names[-1]
    outputs = activations(model, to_batch(images, _device(model)), list(dict.fromkeys(layers + [last])))
    probabilities = probabilities_from_output(model, outputs[last]).float().cpu().numpy()
    return {name: layer_figure(model, images, name, values=outputs[name].float().cpu().numpy(),
                               probabilities=probabilities, **options) for name in layers}


# ---- class patterns ---------------------------------------------------------------------------


def pattern_figure(result: ClassPatterns, cmap: str = "viridis", numbers: bool = True, split: str = "test") -> np.ndarray:
    """Mean grid of each digit side by side with its common points circled, and a colour bar."""
    vmin = float(min(result.means[0].min(), result.means[1].min()))
    vmax = float(max(result.means[0].max(), result.means[1].max()))
    columns, factor = grid_options(result.means[0].shape)
    panels = []
    color_scale = None
    for which, digit in enumerate(result.digits):
        scaled, color_scale = render.scale_maps(result.means[which], "shared", vmin, vmax)
        picture, layout = render.map_grid(scaled, cmap, factor, columns, numbers=numbers)
        picture = mark_points(picture, layout, result.shared_points(which), YELLOW)
        picture = mark_points(picture, layout, result.distinctive_points(which), RED)
        n_common = int(result.common_points(which).sum())
        n_distinct = int(result.distinctive_points(which).sum())
        caption = render.text_block(f"mean of {result.counts[which]} \"{digit}\"s ({split} split): "
                                    f"{n_common} common points, {n_distinct} distinctive", size=13)
        panel, _ = render.stack([caption, picture], axis="v", gap=4)
        panels.append(panel)
    row, _ = render.stack(panels, axis="h", gap=28)
    bar = render.colorbar(render.ColorScale("shared", vmin, vmax, "mean activation"), cmap, length=200)
    body, _ = render.stack([row, bar], axis="h", gap=16)
    a, b = result.digits
    title = render.text_block(f"{result.layer}: what the \"{a}\"s and the \"{b}\"s have in common", size=14)
    legend = render.text_block(
        f"{result.unit} = tile{' (numbered)' if numbers else ''}; a point is active when >= {result.level:g} x the layer's largest value for that image.\n"
        f"Circled: active in >= {result.min_share:.0%} of the digit's images. Red: distinctive (active in <= {1 - result.min_share:.0%} "
        f"of the other digit's images); yellow: common to both.", size=12)
    picture, _ = render.stack([title, body, legend], axis="v", gap=6)
    return render.pad(picture, 8, 8, 8, 8)


def mark_points(picture: np.ndarray, layout: render.GridLayout, mask: np.ndarray, color) -> np.ndarray:
    """Circle the nodes where `mask` is True (mask: C x H x W, or C for dense nodes)."""
    points = np.argwhere(mask.reshape(len(mask), -1))
    if not len(points):
        return picture
    width = layout.tile_shape[1]
    centers = [layout.pixel_center(int(c), int(p) // width, int(p) % width) for c, p in points]
    radius = max(3.0, 0.42 * layout.factor)
    picture = render.draw_circles(picture, centers, radius + 1, color=(0, 0, 0), width=1)
    return render.draw_circles(picture, centers, radius, color=color, width=2)


def separating_figure(result: ClassPatterns, top: int = 16, cmap: str = "viridis") -> np.ndarray:
    """The `top` best separating maps (nodes): the two class means side by side, rank order."""
    a, b = result.digits
    vmin = float(min(result.means[0].min(), result.means[1].min()))
    vmax = float(max(result.means[0].max(), result.means[1].max()))
    shape = result.means[0].shape
    factor = render.tile_factor(max(shape[1:]), 40) if len(shape) == 3 else NODE_CELL
    tiles = []
    for row in result.top(top):
        index = row[result.unit]
        pair = []
        for which in (0, 1):
            scaled, _ = render.scale_maps(result.means[which][index:index + 1], "shared", vmin, vmax)
            tile, _ = render.map_grid(scaled, cmap, factor, 1)
            pair.append(tile)
        both, _ = render.stack(pair, axis="h", gap=2)
        measure = f"AUC {row['auc']:.2f}" if result.measure == "auc" else f"d {row['smd']:+.2f}"
        text = render.text_block(f"#{index} {measure}\nhigher for {row['higher_for']}", size=11, width=both.shape[1])
        tile, _ = render.stack([both, text], axis="v", gap=1)
        tiles.append(tile)
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    tiles = [render.pad(t, 0, width - t.shape[1], height - t.shape[0], 0) for t in tiles]
    picture = render.grid(tiles, columns=8, separator=6)
    title = render.text_block(
        f"{result.layer}: the {len(tiles)} {result.unit}s that separate \"{a}\" from \"{b}\" best "
        f"(left: mean over \"{a}\"s, right: over \"{b}\"s; same colours as the mean grids)\n"
        f"ranked by {_measure_text(result.measure)}", size=13)
    picture, _ = render.stack([title, picture], axis="v", gap=6)
    return render.pad(picture, 8, 8, 8, 8)


def _measure_text(measure: str) -> str:
    if measure == "auc":
        return "max(AUC, 1-AUC) of the per-image map mean (AUC = P(a random first-digit image gives a higher value))"
    return "|standardised mean difference| (Cohen's d) of the per-image map mean"


def confusable_figure(rows: Sequence[tuple[str, Sequence[DigitImage], Sequence[Confusable], int]]) -> np.ndarray:
    """Rows of the most confusable images: (title, images, confusables, other digit) each."""
    parts = []
    for title, images, confusables, other in rows:
        cells = []
        for image, item in zip(images, confusables, strict=True):
            digit = render.gray_image(image.pixels, 3)
            text = render.text_block(f"{image.name}\np({other}) = {item.probability_other:.3f}\npredicted {item.predicted}",
                                     size=11, width=digit.shape[1])
            cell, _ = render.stack([digit, text], axis="v", gap=2)
            cells.append(cell)
        strip, _ = render.stack(cells, axis="h", gap=8) if cells else (render.text_block("(none)"), None)
        block, _ = render.stack([render.text_block(title, size=13), strip], axis="v", gap=4)
        parts.append(block)
    picture, _ = render.stack(parts, axis="v", gap=14)
    return render.pad(picture, 8, 8, 8, 8)


# ---- explanations -----------------------------------------------------------------------------

METHOD_TITLES = {"saliency": "saliency |d logit/d x|", "smoothgrad": "SmoothGrad", "gradcam": "Grad-CAM",
                 "occlusion": "occlusion (logit drop)"}


def ink_share(attribution: np.ndarray, pixels: np.ndarray, ink: float = 0.3) -> float:
    """Share of the positive attribution that falls on ink pixels (value >= `ink` of full scale)."""
    positive = np.clip(np.asarray(attribution, dtype=np.float64), 0, None)
    total = positive.sum()
    return float(positive[np.asarray(pixels) >= ink * 255].sum() / total) if total > 0 else 0.0


def explanation_figure(images: Sequence[DigitImage], maps: dict[str, np.ndarray], targets: Sequence[int],
                       probabilities: np.ndarray, cmap: str = "jet", titles: dict[str, str] | None = None,
                       factor: int = 5) -> np.ndarray:
    """One row per image: the digit, then each method's map (scaled to its max) over the digit."""
    titles = titles or {}
    header = [render.text_block("input", size=13, width=28 * factor)]
    header += [render.text_block(titles.get(m, METHOD_TITLES.get(m, m)), size=13, width=28 * factor) for m in maps]
    rows = [render.stack(header, axis="h", gap=10)[0]]
    for i, image in enumerate(images):
        digit = render.gray_image(image.pixels, factor)
        cells = [render.stack([digit, render.text_block(image_caption(image, probabilities[i]), size=11, width=digit.shape[1])],
                              axis="v", gap=2)[0]]
        for attribution in maps.values():
            values = np.clip(np.asarray(attribution[i], dtype=np.float64), 0, None)
            peak = values.max()
            heat = values / peak if peak > 0 else values
            picture = render.overlay(image.pixels / 255.0, heat, cmap, factor=factor)
            text = render.text_block(f"for class {int(targets[i])}; {ink_share(values, image.pixels):.0%} on ink",
                                     size=11, width=picture.shape[1])
            cells.append(render.stack([picture, text], axis="v", gap=2)[0])
        rows.append(render.stack(cells, axis="h", gap=10)[0])
    picture, _ = render.stack(rows, axis="v", gap=10)
    legend = render.text_block("Colours: each map scaled to its own maximum (red = most responsible); "
                               "\"on ink\" = share of the map's total on pixels with >= 30% ink.", size=11)
    picture, _ = render.stack([picture, legend], axis="v", gap=6)
    return render.pad(picture, 8, 8, 8, 8)


# ---- the demo report --------------------------------------------------------------------------


def pick_examples(model: CNN, mnist, first: int = 4, second: int = 9) -> dict[str, DigitImage]:
    """From the test split: a clear `first`, the `first` the network finds most like a `second`
    while still predicting `first` (the articles' "unclear 4"), and a clear `second`."""
    from cnnscope.analysis.patterns import predict_probabilities

    images, labels = mnist.images("test")

    def probabilities_of(digit: int) -> tuple[np.ndarray, np.ndarray]:
        positions = np.flatnonzero(labels == digit)
        return positions, predict_probabilities(model, _tensor(images[positions], model))

    positions_a, probs_a = probabilities_of(first)
    positions_b, probs_b = probabilities_of(second)
    clear_a = positions_a[int(np.argmax(probs_a[:, first] - probs_a[:, second]))]
    clear_b = positions_b[int(np.argmax(probs_b[:, second] - probs_b[:, first]))]
    still_right = np.flatnonzero(probs_a.argmax(axis=1) == first)
    candidates = still_right if len(still_right) else np.arange(len(positions_a))
    unclear_a = positions_a[candidates[int(np.argmax(probs_a[candidates, second]))]]
    chosen = dataset_images(mnist, [clear_a, unclear_a, clear_b])
    return dict(zip(("clear_a", "unclear_a", "clear_b"), chosen, strict=True))


def pattern_layers(model: CNN) -> list[str]:
    """The articles' choice: the last conv layer and the first dense layer (if it is not the output)."""
    convs = [spec.name for spec in model.spec.layers if spec.kind == "conv"]
    denses = [spec.name for spec in model.spec.layers if spec.kind == "dense"]
    return convs[-1:] + denses[:-1][:1]


REPORT_DIGITS = (4, 9)


def report_section(ctx):
    """Activation grids of every layer for a clear 4, an unclear 4 and a 9; the 4-vs-9 patterns; explanations."""
    from cnnscope.app.report import Section

    first, second = REPORT_DIGITS
    examples = pick_examples(ctx.model, ctx.mnist, first, second)
    figures, facts = _report_grids(ctx, examples)
    more_figures, more_facts = _report_patterns(ctx)
    figures += more_figures + _report_explanations(ctx, examples)
    facts.update(more_facts)
    intro = ("The seed articles IV-VI look at the output of every map for a chosen digit, compare several images "
             f"of a \"{first}\" and ask what tells a \"{first}\" from a \"{second}\" at the last conv layer and at "
             "the first dense layer. Here are the same pictures, the comparison computed over many images, and "
             "the attribution maps known from Captum.")
    return Section("What each layer does", intro, figures, facts)


def _report_grids(ctx, examples: dict[str, DigitImage]) -> tuple[list, dict]:
    from cnnscope.app.report import Figure
    from cnnscope.files import save_image

    first, second = REPORT_DIGITS
    chosen = list(examples.values())
    unclear = examples["unclear_a"]
    p_second = float(predict(ctx.model, [unclear])[0][second])
    who = (f"a clear \"{first}\" ({examples['clear_a'].name}), the \"{first}\" the network finds most like a "
           f"\"{second}\" but still calls \"{first}\" ({unclear.name}, p({second}) = {p_second:.3f}) and a clear "
           f"\"{second}\" ({examples['clear_b'].name})")
    figures = []
    for layer, figure in layer_figures(ctx.model, chosen, cmap="viridis", scale="shared").items():
        path = f"inspect_activations_{layer}.png"
        save_image(ctx.folder / path, figure.image)
        shape = ctx.model.output_shape(layer)
        what = (f"all {shape[0]} maps ({shape[1]}x{shape[2]}), 8 per row from the top left"
                if len(shape) == 3 else f"all {shape[0]} nodes as coloured cells, 8 per row")
        figures.append(Figure(path, f"{layer}: {what}, for {who}. One colour scale for the three images, "
                                    "so brighter means a stronger response in every panel."))
    return figures, {"examples": who}


def _report_patterns(ctx) -> tuple[list, dict]:
    from cnnscope.analysis.patterns import class_indices, class_patterns, most_confusable
    from cnnscope.app.report import Figure
    from cnnscope.files import save_image

    first, second = REPORT_DIGITS
    model, mnist = ctx.model, ctx.mnist
    count = 50 if ctx.quick else 200
    test_x, test_y = mnist.images("test")
    indices = [class_indices(test_y, digit, count) for digit in REPORT_DIGITS]
    tensors = [_tensor(test_x[i], model) for i in indices]
    results = class_patterns(model, tensors[0], tensors[1], pattern_layers(model), REPORT_DIGITS)
    figures, facts = [], {}
    for layer, result in results.items():
        path = f"inspect_patterns_{layer}.png"
        save_image(ctx.folder / path, pattern_figure(result))
        figures.append(Figure(path, f"{layer}: mean activation of the first {count} test \"{first}\"s (left) and "
                                    f"\"{second}\"s (right). Circled points are active in at least 80% of a digit's "
                                    "images; red ones in at most 20% of the other digit's."))
        path = f"inspect_separating_{layer}.png"
        save_image(ctx.folder / path, separating_figure(result))
        best = result.top(3)
        figures.append(Figure(path, f"{layer}: the 16 {result.unit}s whose mean activation differs most between "
                                    f"\"{first}\"s and \"{second}\"s, ranked by ROC AUC; best: "
                                    + ", ".join(f"#{r[result.unit]} (AUC {r['auc']:.2f})" for r in best) + "."))
        facts[f"{layer}: best separating {result.unit}"] = f"#{best[0][result.unit]}, AUC {best[0]['auc']:.3f}, d {best[0]['smd']:+.2f}"
    rows = []
    for which, (digit, other) in enumerate(((first, second), (second, first))):
        items = most_confusable(model, tensors[which], other, 6 if ctx.quick else 8)
        pictures = dataset_images(mnist, [int(indices[which][item.position]) for item in items])
        rows.append((f"the \"{digit}\"s the network finds most like a \"{other}\" (of {count})", pictures, items, other))
    save_image(ctx.folder / "inspect_confusable.png", confusable_figure(rows))
    figures.append(Figure("inspect_confusable.png", f"The most confusable images among the {count} \"{first}\"s and "
                                                    f"\"{second}\"s: the network's probability for the other digit, highest first."))
    return figures, facts


def _report_explanations(ctx, examples: dict[str, DigitImage]) -> list:
    from cnnscope.analysis import attribution
    from cnnscope.app.report import Figure
    from cnnscope.files import save_image

    first, second = REPORT_DIGITS
    model = ctx.model
    chosen = list(examples.values())
    batch = to_batch(chosen, _device(model))
    targets = attribution.resolve_target(model, batch, None).cpu().numpy()
    options = {"smoothgrad": {"samples": 8 if ctx.quick else 25, "seed": ctx.seed}}
    maps = {m: attribution.attribute(m, model, batch, None, **options.get(m, {})).numpy() for m in attribution.METHODS}
    cam_layer = attribution.default_gradcam_layer(model)
    titles = {"gradcam": f"Grad-CAM ({cam_layer})"}
    save_image(ctx.folder / "inspect_explain_methods.png",
               explanation_figure(chosen, maps, targets, predict(model, chosen), titles=titles))
    unclear = [examples["unclear_a"]] * 2
    unclear_batch = to_batch(unclear, _device(model))
    versus_targets = np.array([first, second])
    versus = {"gradcam": attribution.gradcam(model, unclear_batch, versus_targets, layer=cam_layer).numpy(),
              "occlusion": attribution.occlusion(model, unclear_batch, versus_targets).numpy()}
    save_image(ctx.folder / "inspect_explain_4_vs_9.png",
               explanation_figure(unclear, versus, versus_targets, predict(model, unclear), titles=titles))
    return [
        Figure("inspect_explain_methods.png", "Why each image got its prediction: four attribution methods for the "
                                              "predicted class over the digit (red = most responsible). Saliency and "
                                              f"SmoothGrad are input gradients, Grad-CAM weighs the {cam_layer} maps, occlusion "
                                              "hides 4x4 patches and measures the drop of the class score."),
        Figure("inspect_explain_4_vs_9.png", f"The unclear \"{first}\" ({examples['unclear_a'].name}): what speaks for "
                                             f"\"{first}\" (top row) and what speaks for \"{second}\" (bottom row), by "
                                             f"Grad-CAM at {cam_layer} and by occlusion."),
    ]


def _tensor(uint8_images: np.ndarray, model: CNN) -> torch.Tensor:
    from cnnscope.data.mnist import to_tensor

    return to_tensor(uint8_images).to(_device(model))


def _device(model: CNN) -> torch.device:
    return next(model.parameters()).device


def _r(value) -> float:
    return round(float(value), 5)
