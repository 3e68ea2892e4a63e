"""The training section of the demo report: the curves and the facts of the run."""

from __future__ import annotations

import json
from pathlib import Path

from cnnscope.app.report.page import Figure, ReportContext, Section
from cnnscope.errors import UserError
from cnnscope.figures.training import curves_figure
from cnnscope.files import save_figure
from cnnscope.training.settings import settings_from_dict


def report_section(ctx: ReportContext) -> Section:
    """Training curves and the facts of the run, from the checkpoint's config."""
    config = ctx.config
    history = config.get("history") or []
    settings = config.get("settings") or {}
    figures = []
    if history:
        save_figure(Path(ctx.folder) / "training_curves.png", curves_figure(history, settings or None))
        figures.append(Figure("training_curves.png",
                              "Accuracy and cross-entropy per epoch (train: mean over the epoch's batches; "
                              "test: after the epoch), and the learning rate."))
        intro = f"The model was trained for {config.get('epoch')} epochs; the curves are stored in its checkpoint."
    else:
        intro = "This checkpoint carries no training history (it was not made by `cnnscope train`)."
    return Section("Training", intro, figures, training_facts(config))


def training_facts(config: dict) -> dict[str, str]:
    """Recipe, settings, data, accuracy, time and weights of a checkpoint, as short texts by name."""
    settings = config.get("settings") or {}
    metrics = config.get("metrics") or {}
    facts: dict[str, str] = {"recipe": str(config.get("recipe", "?"))}
    if settings:
        try:
            facts["settings"] = settings_from_dict(settings).describe()
        except UserError:
            facts["settings"] = json.dumps(settings)
    data = config.get("data") or {}
    facts["data"] = f"{data.get('split', 'official')} split (seed {data.get('seed', 0)})"
    if metrics:
        facts["test accuracy"] = f"{100 * metrics['test_accuracy']:.2f}% after {config.get('epoch')} epochs"
        facts["best test accuracy"] = f"{100 * metrics['best_test_accuracy']:.2f}% (epoch {metrics['best_epoch']})"
        facts["training time"] = f"{metrics['train_seconds']:.0f} s ({metrics['images_per_second']:,.0f} images/s)"
        facts["weights"] = "moving average of the weights (EMA)" if config.get("weights") == "ema" else "final weights"
    return facts
