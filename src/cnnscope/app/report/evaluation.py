"""The evaluation section of the demo report: accuracy, confusion matrix, confident mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnscope.analysis.evaluation import Evaluation, evaluate
from cnnscope.app.report.page import Figure, ReportContext, Section
from cnnscope.figures.evaluation import confusion_figure, mistakes_figure
from cnnscope.files import save_figure, write_json


def report_section(ctx: ReportContext) -> Section:
    """Test-set accuracy, per-class accuracy, confusion matrix and the most confident mistakes."""
    images, labels = ctx.mnist.images("test")
    if ctx.quick:
        images, labels = images[:2000], labels[:2000]
    evaluation = evaluate(ctx.model, images, labels, "test")
    folder = Path(ctx.folder)
    save_figure(folder / "confusion_matrix.png", confusion_figure(evaluation))
    save_figure(folder / "confident_mistakes.png", mistakes_figure(evaluation, images, 24))
    write_json(folder / "evaluation.json", evaluation.to_dict(24))
    subset = " (first 2000 test images: quick mode)" if ctx.quick else ""
    return Section(
        "Evaluation",
        f"The model on the {len(labels)} test images{subset} of the {ctx.mnist.split} split.",
        [Figure("confusion_matrix.png", "Confusion matrix: rows are true classes, columns predictions; "
                "the diagonal (green) counts correct answers, red cells count mistakes."),
         Figure("confident_mistakes.png", "The mistakes the model was most sure of, with test index, true "
                "class, prediction and its probability. Several are ambiguous even for people.")],
        evaluation_facts(evaluation),
    )


def evaluation_facts(evaluation: Evaluation) -> dict[str, str]:
    """The section's table: accuracy, per-class accuracy, the hardest class, the most frequent confusion."""
    per_class = evaluation.per_class_accuracy()
    worst = int(np.argmin(per_class))
    facts = {
        "test accuracy": f"{100 * evaluation.accuracy:.2f}% ({evaluation.errors} errors of "
                         f"{len(evaluation.labels)} images)",
        "per-class accuracy": ", ".join(f"{k}: {100 * v:.2f}%" for k, v in enumerate(per_class)),
        "hardest class": f"{worst} ({100 * per_class[worst]:.2f}%)",
    }
    matrix = evaluation.confusion()
    np.fill_diagonal(matrix, 0)
    t, p = np.unravel_index(int(matrix.argmax()), matrix.shape)
    if matrix[t, p]:
        facts["most frequent confusion"] = f"true {t} predicted as {p}: {matrix[t, p]} times"
    return facts
