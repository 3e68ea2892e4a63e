"""The picture of a training run: accuracy, loss and learning rate per epoch (curves.png)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from cnnscope.errors import UserError
from cnnscope.training.schedules import learning_rate
from cnnscope.training.settings import TrainSettings, settings_from_dict
from cnnscope.training.state import EpochRecord


def curves_figure(history: Sequence[EpochRecord] | Sequence[dict], settings: TrainSettings | dict | None = None):
    """Accuracy, loss (train vs test) and learning rate per epoch, as in the articles' live plot.

    Args:
        history: the epochs' records, as `EpochRecord`s or as the dicts of a checkpoint's history.
        settings: the run's settings (or their stored dict): the title, and the learning rate
            per optimizer step; None for neither.

    Returns:
        A matplotlib figure (three panels).
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from cnnscope.figures.notebook import NotebookFigure as Figure  # shows itself in Jupyter

    rows = [r if isinstance(r, dict) else asdict(r) for r in history]
    epochs = [r["epoch"] for r in rows]
    figure = Figure(figsize=(12, 3.6))
    ax_acc, ax_loss, ax_lr = figure.subplots(1, 3)
    ax_acc.plot(epochs, [100 * r["accuracy"] for r in rows], "o-", color="tab:green", label="train")
    ax_acc.plot(epochs, [100 * r["test_accuracy"] for r in rows], "o-", color="tab:red", label="test")
    ax_acc.axhline(99.35, color="tab:blue", lw=0.8, ls="--", label="99.35% (articles)")
    lowest_test = min(100 * r["test_accuracy"] for r in rows)
    ax_acc.set_ylim(max(0.0, min(98.0, lowest_test) - 0.3), 100.02)  # the 99% region readable; early
    ax_acc.set_title("accuracy (%)")  # training values below the axis are cut off
    ax_loss.plot(epochs, [r["loss"] for r in rows], "o-", color="tab:green", label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in rows], "o-", color="tab:red", label="test")
    ax_loss.set_yscale("log")
    ax_loss.set_title("cross-entropy loss")
    schedule = _schedule_curve(rows, settings)
    if schedule is not None:
        ax_lr.plot(*schedule, "-", color="tab:purple", lw=1.2)
        ax_lr.set_title("learning rate per optimizer step")
    ax_lr.plot(epochs, [r["lr"] for r in rows], "o", color="tab:purple")
    if schedule is None:
        ax_lr.set_title("learning rate (end of epoch)")
    ax_lr.set_yscale("log")
    for ax in (ax_loss, ax_lr):  # plain tick labels (no mathtext) on the log axes
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    for ax in (ax_acc, ax_loss, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(epochs) < 25:
            ax.set_xticks(epochs)
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_loss.legend(loc="upper right", fontsize=8)
    if settings is not None:
        text = settings.describe() if isinstance(settings, TrainSettings) else settings_from_dict(settings).describe()
        figure.suptitle(text, fontsize=9)
    figure.tight_layout()
    return figure


def _schedule_curve(rows: list[dict], settings) -> tuple[list[float], list[float]] | None:
    """(epoch position, learning rate) for up to 2000 optimizer steps of the run, from the settings."""
    if settings is None or not rows:
        return None
    if isinstance(settings, dict):
        try:
            settings = settings_from_dict(settings)
        except UserError:
            return None
    steps_per_epoch = max(1, rows[0]["step"])
    total = steps_per_epoch * settings.epochs
    shown = rows[-1]["step"]
    stride = max(1, shown // 2000)
    steps = list(range(0, shown, stride))
    return [s / steps_per_epoch for s in steps], [learning_rate(settings, s, total, steps_per_epoch) for s in steps]
