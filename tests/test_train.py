"""Training: it learns on real images, is reproducible, resumes exactly, saves what it promises."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cnnscope.errors import CheckpointError, UserError
from cnnscope.nn.checkpoint import load_checkpoint
from cnnscope.training import loop as train_module
from cnnscope.training.loop import (
    TrainSettings,
    augment_batch,
    ensure_default_model,
    is_complete_checkpoint,
    learning_rate,
    load_train_state,
    new_model,
    penalty,
    recipe_settings,
    run_training,
    train,
)

TINY = TrainSettings(recipe="custom", epochs=2, batch_size=64, optimizer="adam", lr=2e-3, schedule="onecycle",
                     train_images=3000, test_images=1000)


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_short_training_on_real_images_lowers_the_loss_and_beats_90_percent(mnist):
    state = train(TINY, mnist, progress=False, log=lambda line: None)
    first, last = state.history
    assert last.loss < first.loss
    assert last.test_loss < first.test_loss
    assert last.test_accuracy > 0.90  # on 1000 held-out test images
    assert state.step == 2 * math.ceil(3000 / 64)


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not(mnist):
    settings = replace(TINY, epochs=1, train_images=640, test_images=300, augment="shift")
    a = train(settings, mnist, progress=False, log=lambda line: None)
    b = train(settings, mnist, progress=False, log=lambda line: None)
    c = train(replace(settings, seed=1), mnist, progress=False, log=lambda line: None)
    assert torch.equal(weights(a.model), weights(b.model))
    assert a.history[0].test_loss == b.history[0].test_loss
    assert not torch.equal(weights(a.model), weights(c.model))


@pytest.mark.parametrize("optimizer", [
    "adam", "rmsprop",
    pytest.param("nadam", marks=pytest.mark.slow), pytest.param("adamax", marks=pytest.mark.slow),
    pytest.param("sgd", marks=pytest.mark.slow),
])
def test_resume_continues_from_the_last_epoch_exactly(mnist, tmp_path, optimizer):
    settings = replace(TINY, optimizer=optimizer, epochs=2, train_images=640, test_images=500, ema=0.99 if optimizer == "adam" else 0.0,
                       momentum=0.5 if optimizer in ("rmsprop", "sgd") else None, schedule="power", l2=1e-3)
    quiet = {"progress": False, "log": lambda line: None}
    straight = run_training(settings, tmp_path / "straight", **quiet)
    run_training(replace(settings, epochs=1), tmp_path / "split", **quiet)
    assert load_train_state(tmp_path / "split").epoch == 1
    resumed = run_training(None, tmp_path / "split", resume=True, epochs=2, **quiet)
    assert [r.epoch for r in resumed.history] == [1, 2]
    assert resumed.step == straight.step
    assert torch.equal(weights(resumed.model), weights(straight.model))
    assert resumed.history[-1].test_loss == straight.history[-1].test_loss
    _, config = load_checkpoint(tmp_path / "split")
    assert config["epoch"] == 2 and config["complete"] is True and len(config["history"]) == 2


def test_checkpoint_folder_holds_what_was_promised(mnist, tmp_path):
    settings = replace(TINY, epochs=1, train_images=500, test_images=500)
    state = run_training(settings, tmp_path / "run", progress=False, log=lambda line: None)
    folder = tmp_path / "run"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "curves.png", "initial.safetensors", "metrics.csv", "model.safetensors",
                     "train_state.safetensors"]
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
    quiet = {"progress": False, "log": lambda line: None}
    settings = replace(TINY, epochs=1, train_images=300, test_images=500)
    run_training(settings, tmp_path / "run", **quiet)
    saved = load_file(str(tmp_path / "run" / "initial.safetensors"))
    # seed 5 would draw other initial weights; --reset starts from the saved ones (seed 0's)
    seed5 = replace(settings, seed=5)
    again = run_training(seed5, tmp_path / "run", reset=True, **quiet)
    expected = train(seed5, mnist, state=train_module.new_state(seed5, mnist, initial_weights=saved),
                     progress=False, log=lambda line: None)
    assert torch.equal(weights(again.model), weights(expected.model))
    assert torch.equal(load_file(str(tmp_path / "run" / "initial.safetensors"))["body.Dense_1.weight"],
                       saved["body.Dense_1.weight"])  # a reset run keeps the saved initial weights
    with pytest.raises(CheckpointError, match="cannot --reset"):
        run_training(settings, tmp_path / "empty", reset=True, **quiet)


def test_power_schedule_is_keras_inverse_time_decay():
    seed = recipe_settings("seed")
    # the article's log: "present lr: 1.31509732e-05, present iteration: 75040"
    assert learning_rate(seed, 75040, 10**6, 938) == pytest.approx(1.31509732e-05, rel=1e-6)
    assert learning_rate(seed, 0, 10, 938) == 1e-3
    exp = replace(seed, schedule="exponential", decay_rate=0.5, decay_steps=100)
    assert learning_rate(exp, 200, 10**6, 938) == pytest.approx(0.25e-3)
    one = replace(seed, schedule="onecycle", lr=1e-2)
    rates = [learning_rate(one, s, 1000, 100) for s in range(1000)]
    assert max(rates) == pytest.approx(1e-2, rel=1e-3) and rates[0] < 1e-3 and rates[-1] < 1e-5


def test_seed_recipe_has_the_articles_settings():
    seed = recipe_settings("seed")
    assert (seed.optimizer, seed.lr, seed.momentum, seed.schedule, seed.decay_rate, seed.decay_steps,
            seed.l2, seed.batch_size) == ("rmsprop", 1e-3, 0.8, "power", 1e-3, 1, 1e-3, 64)
    optimizer = train_module.make_optimizer(seed, new_model(seed, 0.0, 1.0).parameters())
    group = optimizer.param_groups[0]
    assert (group["rho"], group["eps"], group["momentum"]) == (0.9, 1e-7, 0.8)  # Keras RMSprop


def test_rmsprop_follows_tensorflow_with_epsilon_inside_the_square_root():
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = train_module.KerasRMSprop([weight], lr=0.1, momentum=0.5)
    ms, mom, w = np.zeros(2), np.zeros(2), np.array([1.0, -2.0])
    for grad in ([0.3, -0.01], [0.2, 0.0], [-0.5, 1e-4]):
        weight.grad = torch.tensor(grad)
        optimizer.step()
        g = np.array(grad)
        ms = 0.9 * ms + 0.1 * g**2
        mom = 0.5 * mom + 0.1 * g / np.sqrt(ms + 1e-7)
        w = w - mom
    assert np.allclose(weight.detach().numpy(), w, atol=1e-6)


def test_l2_penalty_is_keras_sum_of_squares_on_dense_kernels_only():
    model = new_model(TrainSettings(), 0.0, 1.0)
    dense = model.body.Dense_1.weight.pow(2).sum() + model.body.Dense_2.weight.pow(2).sum()
    assert torch.allclose(penalty(model, TrainSettings(l2=1e-3)), 1e-3 * dense)
    conv = sum(model.body.get_submodule(n).weight.pow(2).sum() for n in ("Conv2D_1", "Conv2D_2", "Conv2D_3"))
    assert torch.allclose(penalty(model, TrainSettings(l2=1e-3, penalize_conv=True)), 1e-3 * (dense + conv))
    l1 = model.body.Dense_1.weight.abs().sum() + model.body.Dense_2.weight.abs().sum()
    assert torch.allclose(penalty(model, TrainSettings(l1=0.01)), 0.01 * l1)
    assert penalty(model, TrainSettings()).item() == 0.0


def test_keras_init_is_glorot_uniform_with_zero_biases():
    model = new_model(TrainSettings(), 0.0, 1.0)
    weight = model.body.Dense_1.weight
    limit = math.sqrt(6 / (1152 + 100))
    assert weight.abs().max() <= limit and weight.abs().max() > 0.95 * limit
    assert model.body.Conv2D_2.bias.abs().sum() == 0


def test_shift_augmentation_moves_digits_without_cutting_them(mnist):
    from cnnscope.data.mnist import to_tensor

    x = to_tensor(mnist.train_x[:64])
    settings = TrainSettings(augment="shift", shift=2)
    shifted = augment_batch(x, settings, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    candidates = torch.stack([padded[:, :, dy : dy + 28, dx : dx + 28] for dy in range(5) for dx in range(5)], 1)
    matches = (candidates == shifted[:, None]).all(dim=(2, 3, 4))  # image i is some whole-pixel shift of x[i]
    assert matches.any(dim=1).all()
    assert (shifted != x).any(dim=(1, 2, 3)).float().mean() > 0.8
    affine = augment_batch(x, replace(settings, augment="affine"), torch.Generator().manual_seed(0))
    assert affine.shape == x.shape and affine.min() >= 0


@pytest.mark.parametrize("change, message", [
    ({"optimizer": "adagrad"}, "unknown optimizer 'adagrad'; allowed: adam, rmsprop"),
    ({"schedule": "cosine"}, "unknown schedule 'cosine'"),
    ({"epochs": 0}, "epochs must be a whole number >= 1"),
    ({"batch_size": -3}, "batch size must be"),
    ({"lr": 0.0}, "learning rate must be > 0"),
    ({"momentum": 1.5}, "momentum must be in"),
    ({"l2": -1.0}, "l2 must be >= 0"),
    ({"augment": "rotate"}, "unknown augmentation"),
])
def test_bad_settings_name_the_problem(change, message):
    with pytest.raises(UserError, match=message):
        replace(TrainSettings(), **change).validate()
    with pytest.raises(UserError, match="unknown recipe"):
        recipe_settings("fastest")


def test_corrupt_training_state_cannot_be_resumed(mnist, tmp_path):
    run_training(replace(TINY, epochs=1, train_images=300, test_images=300), tmp_path, progress=False, log=lambda line: None)
    (tmp_path / "train_state.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError, match="corrupt|not a cnnscope"):
        load_train_state(tmp_path)


def test_ensure_default_model_trains_once_then_reuses(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(train_module, "recipe_settings", lambda name: replace(TINY, epochs=1, train_images=300, test_images=300))
    lines: list[str] = []
    folder = ensure_default_model(log=lines.append, progress=False)
    assert folder == tmp_path / "models" / "default" and is_complete_checkpoint(folder)
    assert any("training the default recipe" in line for line in lines)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    lines.clear()
    assert ensure_default_model(log=lines.append, progress=False) == folder
    assert lines == [] and (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_report_section_draws_the_curves_and_states_the_facts(mnist, tmp_path):
    from cnnscope.app.report import ReportContext

    run_training(replace(TINY, epochs=2, train_images=300, test_images=300), tmp_path / "m", progress=False, log=lambda line: None)
    model, config = load_checkpoint(tmp_path / "m")
    ctx = ReportContext(model=model, config=config, mnist=mnist, model_dir=tmp_path / "m",
                        folder=tmp_path / "report", quick=True)
    section = train_module.report_section(ctx)
    assert section.figures[0].path == "training_curves.png"
    assert (tmp_path / "report" / "training_curves.png").stat().st_size > 10_000
    assert "after 2 epochs" in section.facts["test accuracy"]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["history"][1]["epoch"] == 2
    assert np.isfinite(config["metrics"]["train_seconds"])
