"""The training state: the seed's initial weights, and a state file that cannot be trusted."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from cnnscope.errors import CheckpointError
from cnnscope.training.runs import run_training
from cnnscope.training.settings import TrainSettings
from cnnscope.training.state import load_train_state, metrics_csv, new_model
from helpers import QUIET, TINY_TRAINING


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
