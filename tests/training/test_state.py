"""The training state: the seed's initial weights, and a state file that cannot be trusted."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cnnscope.errors import CheckpointError
from cnnscope.training.runs import run_training
from cnnscope.training.settings import TrainSettings
from cnnscope.training.state import load_train_state, metrics_csv, new_model
from helpers import QUIET, TINY_TRAINING, assert_one_line_error, run_cli


def test_keras_init_is_glorot_uniform_with_zero_biases():
    model = new_model(TrainSettings(), 0.0, 1.0)
    weight = model.body.Dense_1.weight
    limit = math.sqrt(6 / (1152 + 100))
    assert weight.abs().max() <= limit and weight.abs().max() > 0.95 * limit
    assert model.body.Conv2D_2.bias.abs().sum() == 0


def test_saved_state_comes_back_with_its_history(mnist, tmp_path):
    state = run_training(replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300), tmp_path, **QUIET)
    loaded = load_train_state(tmp_path)
    assert (loaded.epoch, loaded.step, loaded.history) == (state.epoch, state.step, state.history)
    assert metrics_csv(loaded.history) == (tmp_path / "metrics.csv").read_text()


def test_corrupt_training_state_cannot_be_resumed(mnist, tmp_path):
    run_training(replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300), tmp_path, **QUIET)
    (tmp_path / "train_state.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError, match="corrupt|not a cnnscope"):
        load_train_state(tmp_path)


# ---- hostile training states: one line naming the field or tensor, nothing built before ----------
@pytest.fixture(scope="module")
def saved_run(mnist, tmp_path_factory):
    """A real run's folder after one epoch (Adam with an EMA copy: every kind of tensor)."""
    folder = tmp_path_factory.mktemp("state_run")
    run_training(replace(TINY_TRAINING, epochs=1, train_images=300, test_images=300, ema=0.9), folder, **QUIET)
    return folder


def edit_state(folder, change_meta=None, change_tensors=None):
    path = folder / "train_state.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    meta = json.loads(metadata["meta"])
    if change_meta:
        meta = change_meta(meta)
    if change_tensors:
        change_tensors(tensors)
    save_file(tensors, str(path), metadata={**metadata, "meta": meta if isinstance(meta, str) else json.dumps(meta)})


def set_key(*path_and_value):
    *path, value = path_and_value

    def change(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return meta
    return change


def drop_key(*path):
    def change(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return meta
    return change


def poisoned(name, value):
    def change(tensors):
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[3] = value
    return change


HOSTILE_META = {
    "missing history": (drop_key("history"), "history: Field required"),
    "missing settings": (drop_key("settings"), "settings: Field required"),
    "unknown field": (set_key("hello", 1), "hello: Extra inputs are not permitted"),
    "epoch as text": (set_key("epoch", "1"), "epoch: Input should be a valid integer"),
    "negative step": (set_key("step", -5), "step: Input should be greater than or equal to 0"),
    "fractional epoch": (set_key("epoch", 1.5), "epoch: Input should be a valid integer"),
    "NaN train seconds": (set_key("train_seconds", float("nan")), "train_seconds: Input should be a finite number"),
    "record with unknown field": (set_key("history", 0, "bogus", 1), "history.0.bogus: Extra inputs are not permitted"),
    "record missing a field": (drop_key("history", 0, "loss"), "history.0.loss: Field required"),
    "record loss as text": (set_key("history", 0, "loss", "low"), "history.0.loss: Input should be a valid number"),
    "history not a list": (set_key("history", {"a": 1}), "history: Input should be a valid list"),
    "history of another epoch count": (set_key("epoch", 2), "1 epoch records do not describe epochs 1..2"),
    "unknown setting": (set_key("settings", "warp", 9), "settings: unknown field 'warp'"),
    "bad setting": (set_key("settings", "optimizer", "bogus"), "unknown optimizer 'bogus'"),
    "negative epochs setting": (set_key("settings", "epochs", -3), "epochs"),
    "huge layout": (set_key("settings", "dense", [[10**8, "relu"], [10, "softmax"]]), "units of Dense_1"),
    "NaN mean": (set_key("data", "mean", float("nan")), "data.mean: Input should be a finite number"),
    "zero std": (set_key("data", "std", 0.0), "data.std: Input should be greater than 0"),
    "missing data": (drop_key("data"), "data: Field required"),
    "no param groups": (set_key("param_groups", []), "param_groups: List should have at least 1 item"),
    "param groups of another optimizer": (set_key("param_groups", [{"params": [0]}]), "optimizer state"),
    "bad optimizer scalar key": (set_key("optim_scalars", {"x": {}}), "optim_scalars.x.[key]: String should match"),
    "meta not an object": (lambda meta: [1, 2], "its metadata is not a JSON object"),
    "meta not JSON": (lambda meta: "{oops", "is corrupt"),
}


@pytest.mark.parametrize("case", HOSTILE_META)
def test_hostile_state_metadata_is_refused_in_one_line(saved_run, tmp_path, case):
    folder = shutil.copytree(saved_run, tmp_path / "run")
    change, message = HOSTILE_META[case]
    edit_state(folder, change_meta=change)
    with pytest.raises(CheckpointError) as error:
        load_train_state(folder)
    assert message in str(error.value) and "\n" not in str(error.value)


HOSTILE_TENSORS = {
    "NaN weight": (poisoned("model.body.Dense_1.weight", float("nan")), "tensor model.body.Dense_1.weight holds NaN"),
    "infinite EMA bias": (poisoned("ema.body.Conv2D_1.bias", float("inf")), "tensor ema.body.Conv2D_1.bias holds NaN"),
    "NaN optimizer moment": (poisoned("optim.0.exp_avg", float("nan")), "tensor optim.0.exp_avg holds NaN"),
    "missing EMA tensor": (lambda t: t.pop("ema.body.Dense_2.bias"), "the file lacks ema.body.Dense_2.bias"),
    "unknown tensor": (lambda t: t.update({"model.body.Extra.weight": torch.zeros(2)}), "unknown tensors model.body.Extra"),
    "wrong shape": (lambda t: t.update({"model.body.Dense_2.bias": torch.zeros(11)}),
                    "tensor model.body.Dense_2.bias has shape [11], the spec needs [10]"),
    "optimizer tensor of another shape": (lambda t: t.update({"optim.0.exp_avg": torch.zeros(5, 5)}),
                                          "unexpected optimizer tensor optim.0.exp_avg of shape [5, 5]"),
    "optimizer tensor of no parameter": (lambda t: t.update({"optim.99.exp_avg": torch.zeros(1)}),
                                         "unexpected optimizer tensor optim.99.exp_avg"),
    "float64": (lambda t: t.update({"model.body.Conv2D_1.bias": t["model.body.Conv2D_1.bias"].double()}),
                "has dtype F64, expected F32"),
}


@pytest.mark.parametrize("case", HOSTILE_TENSORS)
def test_hostile_state_tensors_are_refused_naming_the_tensor(saved_run, tmp_path, case):
    folder = shutil.copytree(saved_run, tmp_path / "run")
    change, message = HOSTILE_TENSORS[case]
    edit_state(folder, change_tensors=change)
    with pytest.raises(CheckpointError) as error:
        load_train_state(folder)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_fifo_state_is_refused_and_the_cli_says_so_in_one_line(saved_run, tmp_path, capsys):
    folder = shutil.copytree(saved_run, tmp_path / "run")
    edit_state(folder, change_meta=set_key("history", 0, "bogus", 1))
    code, _, err = run_cli(["train", "--out", str(folder), "--resume", "--no-progress"], capsys)
    assert_one_line_error(code, err, "history.0.bogus: Extra inputs are not permitted")
    (folder / "train_state.safetensors").unlink()
    os.mkfifo(folder / "train_state.safetensors")
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_train_state(folder)
