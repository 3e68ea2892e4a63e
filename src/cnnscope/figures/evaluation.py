"""Pictures of an evaluation: the confusion matrix and the most confident mistakes.

Both take an `Evaluation` (`cnnscope.analysis.evaluation`) and return a matplotlib figure; they
write no files (`cnnscope evaluate` and the demo report do).
"""

from __future__ import annotations

import numpy as np

from cnnscope.analysis.evaluation import Evaluation


def confusion_figure(evaluation: Evaluation, title: str | None = None):
    """The confusion matrix (counts, log-coloured off the diagonal) with per-class accuracy."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from cnnscope.figures.notebook import NotebookFigure as Figure  # shows itself in Jupyter

    matrix = evaluation.confusion()
    classes = evaluation.num_classes
    figure = Figure(figsize=(7.2, 6.2))
    ax = figure.subplots()
    off = matrix.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    shown = np.ma.masked_invalid(np.where(off > 0, off, np.nan))
    vmax = max(1.0, float(np.nanmax(off)) if np.isfinite(off).any() else 1.0)
    image = ax.imshow(shown, cmap="Reds", norm=LogNorm(vmin=1, vmax=max(vmax, 2)))
    accuracy = evaluation.per_class_accuracy()
    for t in range(classes):
        for p in range(classes):
            count = matrix[t, p]
            if t == p:
                ax.add_patch(_square(t, "#d8ecd8"))
                ax.text(p, t, f"{count}", ha="center", va="center", fontsize=7.5, color="#185a18")
            elif count:
                ax.text(p, t, f"{count}", ha="center", va="center", fontsize=8,
                        color="white" if count > vmax / 3 else "black")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_yticklabels([f"{k}  ({100 * accuracy[k]:.1f}%)" for k in range(classes)], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (per-class accuracy)")
    bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="wrong predictions (count)")
    bar.set_ticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if t <= max(vmax, 2)])
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # no mathtext
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title or f"{evaluation.set_name} set: {100 * evaluation.accuracy:.2f}% correct, "
                 f"{evaluation.errors} errors of {len(evaluation.labels)}")
    figure.tight_layout()
    return figure


def _square(index: int, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((index - 0.5, index - 0.5), 1, 1, color=color, zorder=0.5)


def mistakes_figure(evaluation: Evaluation, images: np.ndarray, count: int = 24, columns: int = 8):
    """The most confident mistakes: each image with its index, true and predicted class."""
    from cnnscope.figures.notebook import NotebookFigure as Figure  # shows itself in Jupyter

    mistakes = evaluation.most_confident_mistakes(count)
    if not mistakes:
        figure = Figure(figsize=(4, 1))
        figure.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        return figure
    columns = min(columns, len(mistakes))
    rows = -(-len(mistakes) // columns)
    figure = Figure(figsize=(1.35 * columns, 1.6 * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, mistake in zip(axes, mistakes, strict=False):
        ax.imshow(images[mistake.index], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"#{mistake.index}\ntrue {mistake.true} \u2192 {mistake.predicted}\n{100 * mistake.probability:.1f}%",
                     fontsize=7.5, linespacing=1.1)
    figure.suptitle(f"most confident mistakes on the {evaluation.set_name} set (predicted class, its probability)",
                    fontsize=9)
    figure.tight_layout()
    return figure
