"""The training curves: three panels, from records or from a checkpoint's stored dicts."""

from __future__ import annotations

from dataclasses import asdict

from cnnscope.figures.training import curves_figure
from cnnscope.training.settings import recipe_settings
from cnnscope.training.state import EpochRecord


def records(epochs: int) -> list[EpochRecord]:
    return [EpochRecord(epoch=e, step=100 * e, lr=1e-3 / e, loss=0.5 / e, accuracy=1 - 0.05 / e,
                        test_loss=0.4 / e, test_accuracy=1 - 0.04 / e, penalty=0.0, seconds=1.0,
                        eval_seconds=0.1, images=6400) for e in range(1, epochs + 1)]


def test_curves_from_records_and_from_stored_dicts_alike():
    settings = recipe_settings("seed")
    figure = curves_figure(records(3), settings)
    stored = curves_figure([asdict(r) for r in records(3)], asdict(settings))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["accuracy (%)", "cross-entropy loss", "learning rate per optimizer step"]
    assert titles == [ax.get_title() for ax in stored.axes]
    assert figure.texts[0].get_text() == settings.describe()  # the suptitle


def test_curves_without_settings_show_the_epochs_learning_rate_only():
    figure = curves_figure(records(2))
    assert figure.axes[2].get_title() == "learning rate (end of epoch)"
