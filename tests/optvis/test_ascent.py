"""The ascent loop: the articles' rule by hand, stopping rules, batching, callbacks, noise starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnscope.errors import UserError
from cnnscope.figures.oip import animation_frames
from cnnscope.files import save_gif
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import ModelSpec, Normalization
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings, ascend, log_snapshot_steps, relative_change
from cnnscope.optvis.callbacks import Callback, FrameCollector, ProgressBar
from cnnscope.optvis.oip import find_oips, map_objectives
from cnnscope.optvis.starts import from_dataset, multiscale_noise

STRONG_MAP = None  # filled lazily: a Conv2D_3 map of the small model that reacts to noise


def tiny_linear_model() -> CNN:
    """One 2x2 linear conv on 4x4 images: the objective is linear in x, so its gradient is known."""
    spec = ModelSpec.from_lists(conv=[(1, (2, 2), "linear")], pools=[], dense=[(2, "linear")],
                                normalization=Normalization("none"))
    spec = ModelSpec(spec.layers, image_size=4, normalization=spec.normalization)
    model = CNN(spec)
    with torch.no_grad():
        model.body.Conv2D_1.weight.copy_(torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]]))
        model.body.Conv2D_1.bias.fill_(0.25)
    return model.eval()


def test_default_rule_matches_a_hand_computed_step():
    model = tiny_linear_model()
    x = np.arange(16, dtype=np.float64).reshape(4, 4) ** 1.5 / 10
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    # value: mean over the 3x3 outputs of sum(w * patch) + bias
    outputs = np.array([[np.sum(w * x[i:i + 2, j:j + 2]) + 0.25 for j in range(3)] for i in range(3)])
    # gradient: each output adds w to the pixels of its patch, divided by 9 outputs
    grad = np.zeros((4, 4))
    for i in range(3):
        for j in range(3):
            grad[i:i + 2, j:j + 2] += w / 9
    g = grad / (np.sqrt(np.mean(grad ** 2)) + 1e-7)
    moved = x + 0.01 * g
    expected = (moved - moved.mean()) / max(moved.std(), 1 / 4)
    result = ascend(model, torch.tensor(x, dtype=torch.float32)[None, None], O.channel("Conv2D_1", 0),
                    AscentSettings(steps=1, epsilon=0.01))
    assert result.values.shape == (2, 1)
    assert result.values[0, 0] == pytest.approx(outputs.mean(), rel=1e-5)
    assert np.allclose(result.images[0, 0].numpy(), expected, atol=1e-5)
    assert result.steps_used.tolist() == [1] and result.reacted.tolist() == [True]


def test_standardisation_floor_and_adam_rule():
    model = tiny_linear_model()
    x = torch.zeros(1, 1, 4, 4)
    result = ascend(model, x, O.channel("Conv2D_1", 0), AscentSettings(steps=1, rule="adam", epsilon=0.1))
    # Adam's first step moves every pixel with a non-zero gradient by epsilon
    moved = 0.1 * torch.sign(torch.tensor([[1.0, -1.0, -1.0, -2.0], [1.5, 2.5, 2.5, 1.0],
                                           [1.5, 2.5, 2.5, 1.0], [0.5, 3.5, 3.5, 3.0]]))
    expected = (moved - moved.mean()) / max(float(moved.std(unbiased=False)), 0.25)
    assert torch.allclose(result.images[0, 0], expected, atol=1e-5)


def _strong_map(model) -> int:
    global STRONG_MAP
    if STRONG_MAP is None:
        probe = find_oips(model, map_objectives(model, "Conv2D_3"), AscentSettings(steps=12, snapshot_steps=(0,)))
        STRONG_MAP = int(torch.where(probe.reacted, probe.final, torch.zeros(()) - 1).argmax())
    return STRONG_MAP


def test_loss_rises_and_convergence_measure_falls(small_model):
    m = _strong_map(small_model)
    result = ascend(small_model, multiscale_noise(1, seed=3), O.channel("Conv2D_3", m), AscentSettings(steps=200))
    values = result.values[:, 0]
    assert result.reacted.item()
    assert values[-1] > 2 * values[0]
    change = relative_change(result.values)[:, 0]
    assert torch.isnan(change[0])
    assert change[180:].abs().mean() < change[11:31].abs().mean() / 3
    assert sorted(result.snapshots) == list(log_snapshot_steps(200))


def test_zero_reaction_detector_fires_for_a_dead_map(small_model):
    m = 7
    with torch.no_grad():
        small_model.body.Conv2D_3.weight[m] = -small_model.body.Conv2D_3.weight[m].abs()
        small_model.body.Conv2D_3.bias[m] = -1.0
    alive = _strong_map(small_model)
    if alive == m:
        alive = (m + 1) % 128
    result = ascend(small_model, multiscale_noise(2, seed=0), O.per_element([O.channel("Conv2D_3", m), O.channel("Conv2D_3", alive)]),
                    AscentSettings(steps=40, zero_patience=10, snapshot_steps=(0, 18, 40)))
    assert result.reacted.tolist()[0] is False
    assert int(result.steps_used[0]) == 10  # zero for 11 steps (0..10), then frozen
    assert torch.all(result.values[:, 0] == 0)
    assert int(result.steps_used[1]) == 40
    assert torch.equal(result.snapshots[40][0], result.snapshots[18][0])  # frozen image


def test_batched_equals_one_by_one(small_model):
    maps = [0, 5, 17, 64, 127]
    settings = AscentSettings(steps=30)
    together = find_oips(small_model, map_objectives(small_model, "Conv2D_3", maps), settings, seed=4)
    for i, m in enumerate(maps):
        alone = find_oips(small_model, map_objectives(small_model, "Conv2D_3", [m]), settings, seed=4)
        assert torch.allclose(alone.images[0], together.images[i], atol=1e-4)
        assert torch.allclose(alone.values[:, 0], together.values[:, i], rtol=1e-4, atol=1e-5)
        assert alone.reacted[0] == together.reacted[i]
    chunked = find_oips(small_model, map_objectives(small_model, "Conv2D_3", maps), settings, seed=4, chunk_size=2)
    assert torch.allclose(chunked.values, together.values, rtol=1e-4, atol=1e-5)


def test_same_seed_same_numbers(small_model):
    settings = AscentSettings(steps=25, jitter=1)
    objective = O.per_element([O.channel("Conv2D_3", m) for m in (1, 2, 3)])
    first = ascend(small_model, multiscale_noise(3, seed=9), objective, settings)
    second = ascend(small_model, multiscale_noise(3, seed=9), objective, settings)
    assert torch.equal(first.images, second.images) and torch.equal(first.values, second.values)
    other = ascend(small_model, multiscale_noise(3, seed=10), objective, settings)
    assert not torch.equal(first.images, other.images)


def _move(model, objective, read, steps=60, **kw):
    x = multiscale_noise(1, seed=2)
    before = read(x)
    result = ascend(model, x, objective, AscentSettings(steps=steps, **kw))
    return read(result.images) - before


def test_node_objective_moves_its_node_more_than_neighbours(small_model):
    m = _strong_map(small_model)

    def read(x):
        with torch.no_grad():
            return small_model.activations(x, ["Conv2D_3"], normalize=False)["Conv2D_3"][0]

    delta = _move(small_model, O.node("Conv2D_3", m, 0, 2), read)
    assert delta[m, 0, 2] > 0
    neighbours = torch.cat([delta[m].flatten()[[i for i in range(9) if i != 2]], delta[:, 0, 2][torch.arange(128) != m]])
    assert delta[m, 0, 2] > neighbours.max()


def test_logit_objective_moves_its_logit_most(small_model):
    def read(x):
        with torch.no_grad():
            return small_model.activations(x, [small_model.layer_names[-1]], normalize=False)[small_model.layer_names[-1]][0]

    for k in (4, 7):
        delta = _move(small_model, O.logit(k), read, steps=80)
        assert int(delta.argmax()) == k
        result = ascend(small_model, multiscale_noise(1, seed=2), O.logit(k), AscentSettings(steps=80))
        assert int(read(result.images).argmax()) == k


def test_dense_node_objective(small_model):
    def read(x):
        with torch.no_grad():
            return small_model.activations(x, ["Dense_1"], normalize=False)["Dense_1"][0]

    x = multiscale_noise(1, seed=2)
    unit = int(read(x).argmax())  # a unit that is on, so it has a gradient
    delta = _move(small_model, O.node("Dense_1", unit), read, steps=40)
    assert int(delta.argmax()) == unit


def test_early_stop_and_callbacks(small_model, tmp_path):
    m = _strong_map(small_model)
    seen = []

    class Recorder(Callback):
        def on_begin(self, settings, images):
            seen.append(("begin", settings.steps, images.shape[0]))

        def __call__(self, step, images, values):
            seen.append(step)

        def on_end(self, result):
            seen.append(("end", result.steps_run))

    gif = FrameCollector(every=10)
    settings = AscentSettings(steps=300, early_stop=True, tolerance=0.05, patience=4)
    result = ascend(small_model, multiscale_noise(1, seed=1), O.channel("Conv2D_3", m), settings,
                    [Recorder(), ProgressBar(disable=True), gif])
    stop = int(result.steps_used[0])
    assert 14 <= stop < 300 and bool(result.converged[0])
    assert result.values.shape[0] == stop + 1
    change = relative_change(result.values)[stop - 3:stop + 1, 0]
    assert torch.all(change < 0.05)
    assert seen[0] == ("begin", 300, 1) and seen[-1] == ("end", stop)
    assert seen[1:-1] == list(range(stop + 1))
    assert stop in result.snapshots
    frames = animation_frames(gif.images, scale=2)
    assert len(frames) >= stop // 10 and frames[0].shape == (56, 56, 3)
    assert torch.equal(gif.images[-1], result.images[0, 0])
    path = save_gif(tmp_path / "evolution.gif", frames)
    with Image.open(path) as picture:
        assert picture.n_frames == len(frames)


def test_extras_raise_the_objective_and_leave_the_model_alone(small_model):
    m = _strong_map(small_model)
    weights = {k: v.clone() for k, v in small_model.state_dict().items()}
    small_model.train()
    x = multiscale_noise(1, size=(40, 36), seed=5)  # any size works for conv objectives
    result = ascend(small_model, x, O.channel("Conv2D_3", m),
                    AscentSettings(steps=40, jitter=2, blur=0.5, tv_weight=0.05, rule="adam", epsilon=0.05))
    assert result.images.shape == (1, 1, 40, 36)
    assert result.values[-1, 0] > result.values[0, 0]
    assert small_model.training  # mode restored
    assert all(torch.equal(v, weights[k]) for k, v in small_model.state_dict().items())
    assert all(p.grad is None for p in small_model.parameters())


@pytest.mark.parametrize("settings, message", [
    (AscentSettings(steps=0), "steps"),
    (AscentSettings(steps=2.5), "steps"),
    (AscentSettings(epsilon=0), "epsilon"),
    (AscentSettings(epsilon=float("nan")), "epsilon"),
    (AscentSettings(rule="sgd"), "step rule"),
    (AscentSettings(jitter=-1), "jitter"),
    (AscentSettings(blur=float("nan")), "blur"),
    (AscentSettings(snapshot_steps=(0, 700)), "snapshot"),
])
def test_bad_settings(small_model, settings, message):
    with pytest.raises(UserError, match=message):
        ascend(small_model, multiscale_noise(1), O.channel("Conv2D_3", 0), settings)


def test_log_snapshot_steps():
    assert log_snapshot_steps(600) == (0, 9, 18, 36, 72, 144, 288, 600)
    assert log_snapshot_steps(10) == (0, 10)
    assert log_snapshot_steps(128) == (0, 2, 4, 8, 16, 32, 64, 128)


def test_multiscale_noise():
    images = multiscale_noise(4, seed=1)
    assert images.shape == (4, 1, 28, 28)
    flat = images.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(flat.std(1, unbiased=False), torch.ones(4), atol=1e-4)
    assert torch.equal(images, multiscale_noise(4, seed=1))
    assert torch.equal(images[:2], multiscale_noise(2, seed=1))  # image i does not depend on n
    assert not torch.equal(images, multiscale_noise(4, seed=2))
    # one coarse scale only: neighbouring pixels are strongly correlated
    coarse = multiscale_noise(8, scales=(3,), factors=(1.0,), seed=0)
    fine = multiscale_noise(8, scales=(28,), factors=(1.0,), seed=0)

    def neighbour_corr(x):
        a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert neighbour_corr(coarse) > 0.9 and abs(neighbour_corr(fine)) < 0.1
    assert multiscale_noise(1, size=(20, 30), scales=(3, 7, 20), factors=(1, 1, 1)).shape == (1, 1, 20, 30)


@pytest.mark.parametrize("kwargs, message", [
    (dict(scales=(3, 7, 14, 29)), "larger than the 28x28"),
    (dict(scales=(0, 7)), "positive"),
    (dict(scales=(3, 7), factors=(0.5,)), "one factor per scale"),
    (dict(scales=(3,), factors=(float("nan"),)), "finite"),
    (dict(scales=(3,), factors=(0.0,)), "all zero"),
    (dict(scales=()), "at least one"),
])
def test_multiscale_noise_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        multiscale_noise(1, **kwargs)


def test_dataset_start(mnist):
    start = from_dataset(mnist, 0)
    assert start.shape == (1, 1, 28, 28)
    assert abs(float(start.mean())) < 1e-5
    with pytest.raises(UserError, match="0..9999"):
        from_dataset(mnist, 10000)
