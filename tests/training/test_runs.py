"""Training into a folder: it resumes exactly, resets to the saved start, saves what it promises."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnscope.errors import CheckpointError, UserError
from cnnscope.files import sha256_file
from cnnscope.nn.checkpoint import load_checkpoint
from cnnscope.training import runs
from cnnscope.training.loop import EpochCallback, train
from cnnscope.training.runs import ensure_default_model, is_complete_checkpoint, run_training
from cnnscope.training.state import load_train_state, new_model, new_state
from helpers import QUIET, TINY_TRAINING, assert_one_line_error, flat_weights, run_cli


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
    asked: list[str] = []

    def tiny(name):
        asked.append(name)
        return replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300)

    monkeypatch.setattr(runs, "recipe_settings", tiny)
    lines: list[str] = []
    folder = ensure_default_model(log=lines.append, progress=False)
    assert folder == tmp_path / "models" / "default" and is_complete_checkpoint(folder)
    assert asked == ["fast"] and any("training the fast recipe" in line for line in lines)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    lines.clear()
    assert ensure_default_model(log=lines.append, progress=False) == folder
    assert lines == [] and (folder / "model.safetensors").stat().st_mtime_ns == stamp


# ---- a folder that survives any interruption ------------------------------------------------------
class FailsInFirstEpoch(EpochCallback):
    """Stands for a kill: raises at the end of the first epoch, before the checkpoint is written."""

    def on_epoch_end(self, state, record):
        raise RuntimeError("killed")


def folder_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_new_run_over_a_run_needs_force_and_keeps_the_old_one_until_its_first_epoch(mnist, tmp_path, capsys):
    settings = replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300)
    run_training(settings, tmp_path / "run", **QUIET)
    before = folder_bytes(tmp_path / "run")
    with pytest.raises(UserError, match="holds a finished training run") as error:
        run_training(replace(settings, seed=3), tmp_path / "run", **QUIET)
    assert error.value.parameter == "force"
    code, _, err = run_cli(["train", "--out", str(tmp_path / "run"), "--epochs", "1"], capsys)
    assert_one_line_error(code, err, "--force: ")
    with pytest.raises(RuntimeError, match="killed"):
        run_training(replace(settings, seed=3), tmp_path / "run", force=True, callbacks=[FailsInFirstEpoch()], **QUIET)
    assert folder_bytes(tmp_path / "run") == before  # the interrupted new run left the old one whole
    new = run_training(replace(settings, seed=3), tmp_path / "run", force=True, **QUIET)
    model, config = load_checkpoint(tmp_path / "run")
    assert config["settings"]["seed"] == 3 and torch.equal(flat_weights(model), flat_weights(new.model.eval()))


def test_resume_repairs_a_checkpoint_whose_last_write_was_cut_short(mnist, tmp_path, capsys):
    settings = replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300)
    folder = tmp_path / "run"
    run_training(settings, folder, **QUIET)
    first_config = (folder / "config.json").read_bytes()
    run_training(None, folder, resume=True, epochs=2, **QUIET)
    final_weights = load_file(str(folder / "model.safetensors"))
    # a kill between writing the last weights and the last config: config.json still describes epoch 1
    (folder / "config.json").write_bytes(first_config)
    (folder / ".config.json.k1ll3d_x.tmp.json").write_text('{"half": ')  # the killed write's temp file
    with pytest.raises(CheckpointError, match="is not the weights config.json was saved with"):
        load_checkpoint(folder)
    code, out, err = run_cli(["train", "--out", str(folder), "--resume", "--no-progress"], capsys)
    assert code == 0 and "done: " in out and "after 2 epochs" in out, err
    model, config = load_checkpoint(folder)
    assert config["epoch"] == 2 and len(config["history"]) == 2
    assert all(torch.equal(model.state_dict()[name], value) for name, value in final_weights.items())
    assert not any(".tmp" in path.name for path in folder.iterdir())


def test_a_run_killed_in_its_first_epoch_resumes_from_epoch_0(mnist, tmp_path):
    settings = replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300)
    with pytest.raises(RuntimeError, match="killed"):
        run_training(settings, tmp_path / "killed", callbacks=[FailsInFirstEpoch()], **QUIET)
    assert load_train_state(tmp_path / "killed").epoch == 0
    resumed = run_training(None, tmp_path / "killed", resume=True, **QUIET)
    straight = run_training(settings, tmp_path / "straight", **QUIET)
    assert torch.equal(flat_weights(resumed.model), flat_weights(straight.model))


# the run killed and resumed: a small layout (process start-up, not training, is most of the time); its
# epochs (~0.4 s here) outlast the first kill's random delay of up to 0.3 s even on a fast CPU
KILLED_RUN = ('TrainSettings(recipe="custom", epochs=3, batch_size=64, optimizer="adam", lr=2e-3, schedule="onecycle", '
              'train_images=6400, test_images=200, threads=1, seed=0, conv=((8, (3, 3), "relu"), (16, (3, 3), "relu")), '
              'pools=((2, 2),), dense=((32, "relu"), (10, "softmax")))')
TRAINING_PROCESS = ("import sys\n"
                    "from cnnscope.training.runs import run_training\n"
                    "from cnnscope.training.settings import TrainSettings\n"
                    "resume = sys.argv[2] == 'resume'\n"
                    f"run_training(None if resume else {KILLED_RUN}, sys.argv[1], resume=resume, progress=False)\n")


def start_training(folder: Path, resume: bool) -> subprocess.Popen:
    """A training process (`run_training`, as `cnnscope train` runs it) into `folder`."""
    argv = [sys.executable, "-c", TRAINING_PROCESS, str(folder), "resume" if resume else "new"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def epochs_in_metrics(folder: Path) -> int:
    try:
        return max(0, len((folder / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if runs.TEMP_FILE.match(name)] if folder.exists() else []


CHECKPOINT_FILES = ("model.safetensors", "config.json", "train_state.safetensors")


def checkpoint_temp_files(folder: Path) -> list[str]:
    return [name for name in temp_files(folder) if name.startswith(tuple(f".{file}." for file in CHECKPOINT_FILES))]


def kill_plans(rng: random.Random):
    """Three moments to kill at, (name, should_kill(folder, seconds since the process started)):
    a random moment of training, a random checkpoint write of the process (as soon as its temp
    file appears), and the last checkpoint write (after metrics.csv has the last epoch, before
    config.json has it)."""
    delay = rng.uniform(0.0, 0.3)
    write = rng.choice([1, 2, 3])
    seen: dict[str, object] = {}

    def random_moment(folder, seconds):
        if (folder / "train_state.safetensors").exists():
            seen.setdefault("state", seconds)
        return "state" in seen and seconds - seen["state"] >= delay

    def during_a_write(folder, seconds):
        names = checkpoint_temp_files(folder)
        if names and names[0] != seen.get("last"):
            seen["last"], seen["writes"] = names[0], seen.get("writes", 0) + 1
        return seen.get("writes", 0) >= write

    def in_last_checkpoint(folder, seconds):
        return epochs_in_metrics(folder) >= 3

    return [(f"{delay:.2f} s after the resume state appeared", random_moment),
            (f"during checkpoint write {write} of the process", during_a_write),
            ("during the last checkpoint write", in_last_checkpoint)]


def folder_facts(folder: Path) -> dict:
    """What a kill left: temp files, epochs in metrics.csv, config.json and the resume state."""
    facts = {"temp_files": temp_files(folder), "metrics": epochs_in_metrics(folder)}
    try:
        facts["config_epoch"] = json.loads((folder / "config.json").read_text())["epoch"]
        facts["weights_match_config"] = json.loads((folder / "config.json").read_text())["weights_sha256"] == \
            sha256_file(folder / "model.safetensors")
    except (OSError, KeyError, ValueError):
        facts["config_epoch"] = None
    try:
        facts["state_epoch"] = load_train_state(folder).epoch
    except CheckpointError:
        facts["state_epoch"] = None
    return facts


def _mtime(path: Path):
    try:
        info = path.stat()
        return (info.st_mtime_ns, info.st_size)
    except OSError:
        return None


def run_until_killed(folder: Path, should_kill) -> dict:
    process = start_training(folder, resume=(folder / "train_state.safetensors").exists())
    started = time.monotonic()
    while process.poll() is None:
        if should_kill(folder, time.monotonic() - started):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return {"killed": True, **folder_facts(folder)}
        time.sleep(0.0005)
    _, err = process.communicate()
    assert process.returncode == 0, err
    return {"killed": False}


@pytest.mark.slow
def test_training_killed_three_times_at_random_moments_ends_bit_for_bit_like_an_uninterrupted_run(mnist, tmp_path):
    reference = start_training(tmp_path / "reference", resume=False)
    folder = tmp_path / "killed"
    kills = [run_until_killed(folder, should_kill) for _, should_kill in kill_plans(random.Random(15))]
    print("kills:", kills)
    assert all(kill["killed"] for kill in kills), kills
    final = subprocess.run([sys.executable, "-m", "cnnscope", "train", "--out", str(folder), "--resume", "--no-progress"],
                           capture_output=True, text=True)
    assert final.returncode == 0 and "done: " in final.stdout and "after 3 epochs" in final.stdout, final.stderr
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    assert not temp_files(folder)
    got, want = load_file(str(folder / "model.safetensors")), load_file(str(tmp_path / "reference" / "model.safetensors"))
    assert got.keys() == want.keys() and all(torch.equal(got[name], want[name]) for name in want)
    _, config = load_checkpoint(folder)
    _, reference_config = load_checkpoint(tmp_path / "reference")
    assert config["epoch"] == 3 and config["complete"] is True
    assert [r["test_loss"] for r in config["history"]] == [r["test_loss"] for r in reference_config["history"]]
    state, reference_state = load_file(str(folder / "train_state.safetensors")), \
        load_file(str(tmp_path / "reference" / "train_state.safetensors"))
    assert all(torch.equal(state[name], reference_state[name]) for name in reference_state)
