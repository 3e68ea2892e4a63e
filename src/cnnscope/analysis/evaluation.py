"""How good is a model: accuracy, per-class accuracy, confusion matrix, confident mistakes.

`evaluate(model, images, labels)` returns an `Evaluation` (numbers only); the picture
functions (`confusion_figure`, `mistakes_figure`) and `save_evaluation` (PNGs + JSON) are
separate, so the numbers can be used without plotting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.files import save_figure, write_json

EVAL_BATCH = 100  # fastest on a CPU: 3x the images/s of one 10000-image batch (benchmarks/train_speed.py)


@dataclass(frozen=True)
class Mistake:
    index: int  # index in the evaluated image set
    true: int
    predicted: int
    probability: float  # the model's probability for its (wrong) prediction
    true_probability: float

    def to_dict(self) -> dict:
        return {"index": self.index, "true": self.true, "predicted": self.predicted,
                "probability": round(self.probability, 6), "true_probability": round(self.true_probability, 6)}


@dataclass(frozen=True)
class Evaluation:
    """Probabilities of a model for a labelled image set, and what follows from them."""

    probabilities: np.ndarray  # N x classes, float
    labels: np.ndarray  # N, int
    set_name: str = "test"

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def num_classes(self) -> int:
        return self.probabilities.shape[1]

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean())

    @property
    def errors(self) -> int:
        return int((self.predictions != self.labels).sum())

    def confusion(self) -> np.ndarray:
        """classes x classes counts: row = true class, column = predicted class."""
        matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predictions), 1)
        return matrix

    def per_class_accuracy(self) -> np.ndarray:
        matrix = self.confusion()
        totals = matrix.sum(axis=1)
        return np.divide(np.diag(matrix), totals, out=np.zeros(len(totals)), where=totals > 0)

    def most_confident_mistakes(self, count: int = 24) -> list[Mistake]:
        """Wrong predictions, most confident first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        confidence = self.probabilities[wrong, self.predictions[wrong]]
        order = wrong[np.argsort(-confidence, kind="stable")][:count]
        return [
            Mistake(int(i), int(self.labels[i]), int(self.predictions[i]),
                    float(self.probabilities[i, self.predictions[i]]), float(self.probabilities[i, self.labels[i]]))
            for i in order
        ]

    def to_dict(self, mistakes: int = 24) -> dict:
        return {
            "set": self.set_name,
            "images": int(len(self.labels)),
            "accuracy": self.accuracy,
            "errors": self.errors,
            "per_class_accuracy": {str(k): float(v) for k, v in enumerate(self.per_class_accuracy())},
            "confusion": self.confusion().tolist(),
            "most_confident_mistakes": [m.to_dict() for m in self.most_confident_mistakes(mistakes)],
        }


def predict_probabilities(model, images, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Softmax probabilities (N x classes) for uint8 N x 28 x 28 images or a float tensor in [0, 1]."""
    x = images if isinstance(images, torch.Tensor) else to_tensor(np.asarray(images))
    if x.dim() == 3:
        x = x.unsqueeze(1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(model.probabilities(x[start : start + batch_size].to(device)).double().cpu())
    model.train(was_training)
    if not out:
        raise UserError("no images to evaluate")
    return torch.cat(out).numpy()


def evaluate(model, images, labels, set_name: str = "test", batch_size: int = EVAL_BATCH) -> Evaluation:
    """Evaluate `model` on uint8 images (N x 28 x 28) with integer labels."""
    labels = np.asarray(labels).astype(np.int64)
    if len(labels) != len(images):
        raise UserError(f"{len(images)} images but {len(labels)} labels")
    return Evaluation(predict_probabilities(model, images, batch_size), labels, set_name)


# ---- pictures -------------------------------------------------------------------------------


def confusion_figure(evaluation: Evaluation, title: str | None = None):
    """The confusion matrix (counts, log-coloured off the diagonal) with per-class accuracy."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

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
    from matplotlib.figure import Figure

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


def save_evaluation(evaluation: Evaluation, images: np.ndarray, folder: str | os.PathLike,
                    mistakes: int = 24, extra: dict | None = None) -> dict[str, Path]:
    """Write confusion.png, mistakes.png and evaluation.json into `folder`; returns their paths."""
    folder = Path(folder)
    paths = {
        "confusion": save_figure(folder / "confusion.png", confusion_figure(evaluation)),
        "mistakes": save_figure(folder / "mistakes.png", mistakes_figure(evaluation, images, mistakes)),
    }
    body = {**(extra or {}), **evaluation.to_dict(mistakes),
            "files": {name: path.name for name, path in paths.items()}}
    paths["json"] = write_json(folder / "evaluation.json", body)
    return paths


def format_report(evaluation: Evaluation, mistakes: int = 10) -> str:
    """A plain-text summary for the terminal."""
    per_class = evaluation.per_class_accuracy()
    matrix = evaluation.confusion()
    lines = [
        f"{evaluation.set_name} set: accuracy {100 * evaluation.accuracy:.2f}% "
        f"({evaluation.errors} errors of {len(evaluation.labels)})",
        "per class: " + "  ".join(f"{k}: {100 * v:.2f}%" for k, v in enumerate(per_class)),
    ]
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    pairs = sorted(((int(off[t, p]), t, p) for t in range(len(off)) for p in range(len(off)) if off[t, p]), reverse=True)
    if pairs:
        lines.append("most frequent confusions: " + ", ".join(f"{t}\u2192{p} x{c}" for c, t, p in pairs[:5]))
    top = evaluation.most_confident_mistakes(mistakes)
    if top:
        lines.append("most confident mistakes: " + ", ".join(
            f"#{m.index} ({m.true}\u2192{m.predicted}, {100 * m.probability:.1f}%)" for m in top))
    return "\n".join(lines)


# ---- report ---------------------------------------------------------------------------------


def report_section(ctx):
    """Test-set accuracy, per-class accuracy, confusion matrix and the most confident mistakes."""
    from cnnscope.app.report import Figure as ReportFigure
    from cnnscope.app.report import Section

    images, labels = ctx.mnist.images("test")
    if ctx.quick:
        images, labels = images[:2000], labels[:2000]
    evaluation = evaluate(ctx.model, images, labels, "test")
    folder = Path(ctx.folder)
    save_figure(folder / "confusion_matrix.png", confusion_figure(evaluation))
    save_figure(folder / "confident_mistakes.png", mistakes_figure(evaluation, images, 24))
    write_json(folder / "evaluation.json", evaluation.to_dict(24))
    per_class = evaluation.per_class_accuracy()
    worst = int(np.argmin(per_class))
    facts = {
        "test accuracy": f"{100 * evaluation.accuracy:.2f}% ({evaluation.errors} errors of {len(labels)} images)",
        "per-class accuracy": ", ".join(f"{k}: {100 * v:.2f}%" for k, v in enumerate(per_class)),
        "hardest class": f"{worst} ({100 * per_class[worst]:.2f}%)",
    }
    matrix = evaluation.confusion()
    np.fill_diagonal(matrix, 0)
    t, p = np.unravel_index(int(matrix.argmax()), matrix.shape)
    if matrix[t, p]:
        facts["most frequent confusion"] = f"true {t} predicted as {p}: {matrix[t, p]} times"
    subset = " (first 2000 test images: quick mode)" if ctx.quick else ""
    return Section(
        "Evaluation",
        f"The model on the {len(labels)} test images{subset} of the {ctx.mnist.split} split.",
        [ReportFigure("confusion_matrix.png", "Confusion matrix: rows are true classes, columns predictions; "
                      "the diagonal (green) counts correct answers, red cells count mistakes."),
         ReportFigure("confident_mistakes.png", "The mistakes the model was most sure of, with test index, true "
                      "class, prediction and its probability. Several are ambiguous even for people.")],
        facts,
    )
