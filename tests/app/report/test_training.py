"""The training section of the demo report: the curves and the facts of the run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from cnnscope.app.report import ReportContext
from cnnscope.app.report.training import report_section
from cnnscope.nn.checkpoint import load_checkpoint
from cnnscope.training.runs import run_training
from helpers import QUIET, TINY_TRAINING


def test_report_section_draws_the_curves_and_states_the_facts(mnist, tmp_path):
    run_training(replace(TINY_TRAINING, epochs=2, train_images=300, test_images=300), tmp_path / "m", **QUIET)
    model, config = load_checkpoint(tmp_path / "m")
    ctx = ReportContext(model=model, config=config, mnist=mnist, model_dir=tmp_path / "m",
                        folder=tmp_path / "report", quick=True)
    section = report_section(ctx)
    assert section.figures[0].path == "training_curves.png"
    assert (tmp_path / "report" / "training_curves.png").stat().st_size > 10_000
    assert "after 2 epochs" in section.facts["test accuracy"]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["history"][1]["epoch"] == 2
    assert np.isfinite(config["metrics"]["train_seconds"])
