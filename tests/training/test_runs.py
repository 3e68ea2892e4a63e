"""Training into a folder: it resumes exactly, resets to the saved start, saves what it promises."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from cnnscope.errors import CheckpointError, UserError
from cnnscope.nn.checkpoint import load_checkpoint
from cnnscope.training import runs
from cnnscope.training.loop import train
from cnnscope.training.runs import ensure_default_model, is_complete_checkpoint, run_training
from cnnscope.training.state import load_train_state, new_model, new_state
from helpers import QUIET, TINY_TRAINING, flat_weights


@pytest.mark.parametrize("optimizer", [
    "adam", "rmsprop",
    pytest.param("nadam", marks=pytest.mark.slow), pytest.param("adamax", marks=pytest.mark.slow),
    pytest.param("sgd", marks=pytest.mark.slow),
])
def test_resume_continues_from_the_last_epoch_exactly(mnist, tmp_path, optimizer):
    settings = replace(TINY_TRAINING, optimizer=optimizer, epochs=2, train_images=640, test_images=500,
                       ema=0.99 if optimizer == "adam" else 0.0,
                       momentum=0.5 if optimizer in ("rmsprop", "sgd") else None, schedule="power", l2=1e-3)
    straight = run_training(settings, tmp_path / "straight", **QUIET)
    run_training(replace(settings, epochs=1), tmp_path / "split", **QUIET)
    assert load_train_state(tmp_path / "split").epoch == 1
    resumed = run_training(None, tmp_path / "split", resume=True, epochs=2, **QUIET)
    assert [r.epoch for r in resumed.history] == [1, 2]
    assert resumed.step == straight.step
    assert torch.equal(flat_weights(resumed.model), flat_weights(straight.model))
    assert resumed.history[-1].test_loss == straight.history[-1].test_loss
    _, config = load_checkpoint(tmp_path / "split")
    assert config["epoch"] == 2 and config["complete"] is True and len(config["history"]) == 2


def test_checkpoint_folder_holds_what_was_promised(mnist, tmp_path):
    settings = replace(TINY_TRAINING, epochs=1, train_images=500, test_images=500)
    state = run_training(settings, tmp_path / "run", **QUIET)
    folder = tmp_path / "run"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "initial.safetensors", "metrics.csv", "model.safetensors",
                     "train_state.safetensors"]  # curves.png is drawn by the CLI (a callback)
    model, config = load_checkpoint(folder)
    assert config["data"]["split"] == "official" and config["settings"]["optimizer"] == "adam"
    assert config["metrics"]["test_accuracy"] == state.history[-1].test_accuracy
    assert abs(model.spec.normalization.mean - mnist.train_x.mean() / 255) < 1e-9
    assert "versions" in config and "torch" in config["versions"]
    lines = (folder / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step,lr,loss,accuracy,test_loss,test_accuracy") and len(lines) == 2
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(model(x), state.model.eval()(x), atol=1e-6)
    initial = load_file(str(folder / "initial.safetensors"))
    fresh = new_model(settings, 0.0, 1.0)
    assert torch.equal(initial["body.Conv2D_1.weight"], fresh.body.Conv2D_1.weight)
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir())


def test_reset_restarts_from_the_saved_initial_weights(mnist, tmp_path):
    settings = replace(TINY_TRAINING, epochs=1, train_images=300, test_images=500)
    run_training(settings, tmp_path / "run", **QUIET)
    saved = load_file(str(tmp_path / "run" / "initial.safetensors"))
    # seed 5 would draw other initial weights; a reset starts from the saved ones (seed 0's)
    seed5 = replace(settings, seed=5)
    again = run_training(seed5, tmp_path / "run", reset=True, **QUIET)
    expected = train(seed5, mnist, state=new_state(seed5, mnist, initial_weights=saved), **QUIET)
    assert torch.equal(flat_weights(again.model), flat_weights(expected.model))
    assert torch.equal(load_file(str(tmp_path / "run" / "initial.safetensors"))["body.Dense_1.weight"],
                       saved["body.Dense_1.weight"])  # a reset run keeps the saved initial weights
    with pytest.raises(CheckpointError, match="nothing to reset to") as error:
        run_training(settings, tmp_path / "empty", reset=True, **QUIET)
    assert error.value.parameter == "reset"


def test_wrong_run_requests_name_the_parameter(mnist, tmp_path):
    with pytest.raises(UserError, match="exclude each other") as error:
        run_training(TINY_TRAINING, tmp_path, resume=True, reset=True, **QUIET)
    assert error.value.parameter == "resume"
    with pytest.raises(CheckpointError, match="nothing to resume") as error:
        run_training(None, tmp_path / "none", resume=True, **QUIET)
    assert error.value.parameter == "resume"
    run_training(replace(TINY_TRAINING, epochs=2, train_images=200, test_images=100), tmp_path / "run", **QUIET)
    with pytest.raises(UserError, match="already trained 2 epochs") as error:
        run_training(None, tmp_path / "run", resume=True, epochs=1, **QUIET)
    assert error.value.parameter == "epochs"


def test_ensure_default_model_trains_once_then_reuses(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(runs, "recipe_settings", lambda name: replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300))
    lines: list[str] = []
    folder = ensure_default_model(log=lines.append, progress=False)
    assert folder == tmp_path / "models" / "default" and is_complete_checkpoint(folder)
    assert any("training the default recipe" in line for line in lines)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    lines.clear()
    assert ensure_default_model(log=lines.append, progress=False) == folder
    assert lines == [] and (folder / "model.safetensors").stat().st_mtime_ns == stamp
