"""Pictures of a model comparison (`cnnscope.analysis.compare`): the CKA heatmap of every layer
pair, the same-layer CKA per layer, histograms of the matched correlations, the N x N tables of
a sweep, and matched units side by side (OIPs and strongest test images).

The matplotlib ones return a figure, the side-by-side picture an RGB uint8 array; none writes
files (`cnnscope compare` and the demo report do).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnscope.analysis.compare import Comparison, LayerMatch
from cnnscope.figures import render
from cnnscope.figures.oip import oip_pair

DIGIT_SCALE = 1  # top images at their own 28 x 28 (three rows match the OIP's height at scale 3)


def cka_heatmap(comparison: Comparison, i: int = 0, j: int = 1):
    """Linear CKA of every layer of model i (rows) with every layer of model j (columns)."""
    from cnnscope.figures.notebook import NotebookFigure as Figure  # shows itself in Jupyter

    matrix = comparison.pair(i, j).cka
    rows, cols = comparison.layers[i], comparison.layers[j]
    figure = Figure(figsize=(1.2 + 0.7 * len(cols), 1.0 + 0.55 * len(rows)))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="magma", vmin=0, vmax=1)
    for r in range(len(rows)):
        for c in range(len(cols)):
            value = matrix[r, c]
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.6 else "white")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(comparison.names[j])
    ax.set_ylabel(comparison.names[i])
    ax.set_title(f"linear CKA (minibatch, {comparison.images} images)", fontsize=10)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return figure


def cka_diagonal_figure(comparison: Comparison):
    """Per layer, the CKA of a layer with the same layer of the other model; one line per pair
    (with more than two models, the mean over pairs and the range)."""
    from cnnscope.figures.notebook import NotebookFigure as Figure  # shows itself in Jupyter

    layers = comparison.layers[0]
    values = {layer: [] for layer in layers}
    for i, j in comparison.pairs:
        for layer, value in comparison.same_layer_cka(i, j).items():
            values.setdefault(layer, []).append(value)
    shown = [layer for layer in layers if values[layer]]
    table = np.array([values[layer] for layer in shown])
    figure = Figure(figsize=(1.5 + 0.75 * len(shown), 3.4))
    ax = figure.subplots()
    x = np.arange(len(shown))
    if table.shape[1] == 1:
        ax.plot(x, table[:, 0], "o-", color="#2a6fb0")
        for k, value in enumerate(table[:, 0]):
            ax.annotate(f"{value:.3f}", (k, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        title = f"{comparison.names[0]} vs {comparison.names[1]}: CKA of each layer with itself"
    else:
        ax.fill_between(x, table.min(1), table.max(1), color="#2a6fb0", alpha=0.2, label="range over pairs")
        ax.plot(x, table.mean(1), "o-", color="#2a6fb0", label=f"mean of {table.shape[1]} pairs")
        ax.legend(fontsize=8, loc="lower left")
        title = f"{len(comparison.names)} models: CKA of each layer with the same layer"
    ax.set_xticks(x, shown, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(min(0.0, float(table.min()) - 0.05), 1.05)
    ax.set_ylabel("linear CKA")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def match_histograms(matches: Sequence[LayerMatch], title: str = ""):
    """One histogram per layer of the matched correlations, with the partner threshold."""
    from cnnscope.figures.notebook import NotebookFigure as Figure  # shows itself in Jupyter

    figure = Figure(figsize=(3.0 * len(matches), 2.8))
    axes = np.atleast_1d(figure.subplots(1, len(matches), squeeze=False)[0])
    for ax, match in zip(axes, matches, strict=True):
        ax.hist(match.matched, bins=np.linspace(-0.2, 1.0, 25), color="#2a6fb0")
        ax.axvline(match.threshold, color="#c03030", linestyle="--", linewidth=1)
        ax.set_title(f"{match.layer}: median {np.median(match.matched):.2f}\n"
                     f"{match.share_with_partner:.0%} with a partner >= {match.threshold:g}", fontsize=9)
        ax.set_xlabel("correlation of the matched unit", fontsize=8)
    axes[0].set_ylabel("units")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def pairwise_figure(names: Sequence[str], tables: dict[str, np.ndarray], what: str = "CKA of the same layer"):
    """For a sweep: per layer, the N x N table of a pairwise figure (e.g. same-layer CKA)."""
    from cnnscope.figures.notebook import NotebookFigure as Figure  # shows itself in Jupyter

    count = len(tables)
    figure = Figure(figsize=(0.5 + 2.6 * count, 3.2))
    axes = figure.subplots(1, count, squeeze=False)[0]
    short = [str(k + 1) for k in range(len(names))]
    for ax, (layer, table) in zip(axes, tables.items(), strict=True):
        ax.imshow(table, cmap="magma", vmin=0, vmax=1)
        for r in range(len(names)):
            for c in range(len(names)):
                ax.text(c, r, f"{table[r, c]:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if table[r, c] > 0.6 else "white")
        ax.set_xticks(range(len(names)), short, fontsize=7)
        ax.set_yticks(range(len(names)), short, fontsize=7)
        off = table[~np.eye(len(names), dtype=bool)]
        ax.set_title(f"{layer}\nmean {off.mean():.3f}", fontsize=9)
    figure.suptitle(f"{what}, every pair of runs (1 = {names[0]}, ...)", fontsize=10)
    figure.tight_layout()
    return figure


def matched_pairs_picture(match: LayerMatch, ranks: Sequence[int], oips_a, oips_b,
                          top_a: np.ndarray, top_b: np.ndarray, test_images: np.ndarray,
                          names: Sequence[str] = ("A", "B"), dead_a: Sequence[bool] = (),
                          dead_b: Sequence[bool] = ()) -> np.ndarray:
    """Matched units side by side, one row per pair: rank, units and correlation; A's OIP and its
    top-9 test images; B's OIP and its top-9.

    Args:
        match: the layer's matching.
        ranks: which pairs to show (0 = the best match), in the order shown.
        oips_a: one OIP image per shown pair (1 x H x W, standardised input space), of A's unit.
        oips_b: the same for B's unit.
        top_a: units of A x 9 test-image indices (strongest first).
        top_b: the same for B.
        test_images: the test images (N x 28 x 28, uint8 or [0, 1]).
        names: the models' names.
        dead_a: per unit of A, whether it never varies (its top images mean nothing).
        dead_b: the same for B.

    Returns:
        The picture (RGB uint8).
    """
    rows = []
    for row, rank in enumerate(ranks):
        unit_a, unit_b = (int(u) for u in match.pairs[rank])
        text = (f"#{rank + 1} of {len(match.matched)}\nr = {match.matched[rank]:.3f}\n"
                f"{names[0]} {unit_a} - {names[1]} {unit_b}")
        cells = [render.text_block(text, size=12, width=130)]
        for oip, unit, top, dead in ((oips_a[row], unit_a, top_a, dead_a), (oips_b[row], unit_b, top_b, dead_b)):
            cells.append(oip_pair(oip))
            is_dead = bool(dead[unit]) if len(dead) else False
            cells.append(_top_grid(test_images, top[unit], is_dead))
        picture, _ = render.stack(cells, axis="h", gap=6, align="center")
        rows.append(picture)
    header = render.text_block(
        f"{match.layer}: matched units, best first, worst last. Per model: OIP (plain | contrast-enhanced) "
        f"and the 9 test images with the strongest mean activation", size=12)
    picture, _ = render.stack([header, *rows], axis="v", gap=4)
    return render.pad(picture, 6, 6, 6, 6)


def _top_grid(test_images: np.ndarray, indices: np.ndarray, dead: bool) -> np.ndarray:
    tiles = [render.gray_image(test_images[int(k)], DIGIT_SCALE) for k in indices]
    picture = render.grid(tiles, columns=3, separator=1, separator_color=(200, 200, 200))
    if dead:
        picture = render.label((picture.astype(np.float32) * 0.4 + 150).astype(np.uint8), "dead", (2, 2),
                               color=(255, 255, 255), background=(200, 40, 40))
    return picture
