"""Sweeps (training/sweep): the grid, and one local Ray sweep that trains, resumes, skips and
reports a failure -- with results bitwise equal to plain `run_training` runs."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

from cnnscope.errors import UserError
from cnnscope.nn.checkpoint import load_checkpoint
from cnnscope.training.loop import EpochCallback
from cnnscope.training.runs import is_complete_checkpoint, run_training
from cnnscope.training.settings import TrainSettings
from cnnscope.training.sweep import grid_runs, run_sweep
from helpers import QUIET, flat_weights

SMALL = {"epochs": [2], "train_images": [1000], "test_images": [300], "batch_size": [64]}


def test_grid_runs_are_every_combination_named_by_what_varies():
    runs = grid_runs({"seed": [0, 1], "lr": [1e-3, 2e-3], "epochs": [1]})
    assert [run.name for run in runs] == ["seed-0_lr-0.001", "seed-0_lr-0.002", "seed-1_lr-0.001", "seed-1_lr-0.002"]
    assert runs[3].settings == replace(TrainSettings(), seed=1, lr=2e-3, epochs=1)
    seed_recipe = grid_runs({"recipe": ["default", "seed"], "epochs": [1]})
    assert [r.settings.optimizer for r in seed_recipe] == ["adam", "rmsprop"]
    assert all(r.settings.epochs == 1 for r in seed_recipe)


def test_bad_grids_are_one_line():
    with pytest.raises(UserError, match="unknown training option 'sede' in the grid; allowed: recipe, epochs"):
        grid_runs({"sede": [0, 1]})
    with pytest.raises(UserError, match="learning rate must be > 0"):
        grid_runs({"lr": [1e-3, -1.0]})
    with pytest.raises(UserError, match="non-empty list"):
        grid_runs({"seed": []})


class KilledInSecondEpoch(EpochCallback):
    """Simulates a killed run: epoch 1's checkpoint is written, then the process 'dies' before
    epoch 2's (callbacks run before the checkpoint writer)."""

    def on_epoch_end(self, state, record) -> None:
        if state.epoch == 2:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_a_local_ray_sweep_trains_resumes_skips_and_reports_failures(tmp_path):
    out = tmp_path / "sweep"
    runs = {run.name: run for run in grid_runs({"seed": [0, 1, 2, 3], **SMALL})}
    one_thread = {name: replace(run.settings, threads=1) for name, run in runs.items()}
    # seed-1 was interrupted after its first epoch; seed-2 finished before; seed-3's folder is a file
    with pytest.raises(KeyboardInterrupt):
        run_training(one_thread["seed-1"], out / "seed-1", callbacks=[KilledInSecondEpoch()], **QUIET)
    run_training(one_thread["seed-2"], out / "seed-2", **QUIET)
    (out / "seed-3").write_text("not a folder")
    lines = []
    results = run_sweep(list(runs.values()), out, parallel=2, log=lines.append)
    assert [r.status for r in results] == ["done", "done", "skipped", "failed"]
    assert "File exists" in results[3].error and "seed-3" in results[3].error
    assert "  started seed-1 (resuming)" in lines
    assert any(line.startswith("[") and "1 failed] seed-3: failed:" in line for line in lines)
    # the sweep's runs equal plain runs with the same settings, bit for bit
    for name in ("seed-0", "seed-1"):
        assert is_complete_checkpoint(out / name)
        plain = run_training(one_thread[name], tmp_path / f"plain-{name}", **QUIET)
        swept, _ = load_checkpoint(out / name)
        assert flat_weights(swept).equal(flat_weights(plain.final_model.cpu())), name
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [row["run"] for row in rows] == ["seed-0", "seed-1", "seed-2", "seed-3"]
    assert rows[0]["seed"] == "0" and float(rows[0]["test_accuracy"]) > 0.5 and rows[3]["status"] == "failed"
    table = json.loads((out / "sweep.json").read_text())
    assert table["runs"][1]["epochs_done"] == 2
    # running it again starts nothing (no Ray either): all finished runs are skipped
    again = run_sweep([runs["seed-0"], runs["seed-1"]], out, log=lines.append)
    assert [r.status for r in again] == ["skipped", "skipped"]
