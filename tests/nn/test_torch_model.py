"""`from_torch`: hand-written PyTorch CNNs in every view, layers named by module path, the user's
module never changed; `explore(model)` serves such a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnscope
from cnnscope.analysis import attribution
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.nn.spec import Normalization
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.dream import DreamSettings, dream
from cnnscope.optvis.oip import find_oips, map_objectives

MNIST_NORMALIZATION = Normalization("global", 0.1307, 0.3081)


class BatchNormNet(nn.Module):
    """BatchNorm, average pooling (one module used twice) and F.relu in forward."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 6 * 6, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class SequentialNet(nn.Module):
    """torchvision style: `features` and `classifier` Sequentials inside a Module."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def trained(net: nn.Module, mnist, steps: int = 60, seed: int = 0) -> nn.Module:
    """`net` after a few Adam steps on 2000 real training images (normalised like torchvision's MNIST)."""
    torch.manual_seed(seed)
    x = (to_tensor(mnist.train_x[:2000]) - 0.1307) / 0.3081
    y = torch.from_numpy(mnist.train_y[:2000].astype(np.int64))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        index = torch.randint(0, 2000, (64,), generator=generator)
        loss = F.cross_entropy(net(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net


@pytest.fixture(scope="module")
def nets(mnist):
    return {"batchnorm": trained(BatchNormNet(), mnist), "sequential": trained(SequentialNet(), mnist)}


@pytest.fixture(scope="module")
def digits(mnist):
    return to_tensor(mnist.test_x[:16])


def direct_outputs(net: nn.Module, x: torch.Tensor, paths: list[str]) -> dict[str, list[torch.Tensor]]:
    """Every output of the modules at `paths` in one eval-mode call of `net` itself (per call, in order)."""
    outputs: dict[str, list[torch.Tensor]] = {path: [] for path in paths}
    handles = [net.get_submodule(path).register_forward_hook(
        lambda module, inputs, output, path=path: outputs[path].append(output)) for path in outputs]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = net(x)
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    outputs["output"] = [logits]
    return outputs


def module_state(net: nn.Module) -> tuple:
    """What must not change: weights and buffers, every module's train flag and hook count."""
    tensors = {name: value.detach().clone() for name, value in net.state_dict().items()}
    flags = [(m.training, len(m._forward_hooks), len(m._forward_pre_hooks)) for m in net.modules()]
    grads = [p.requires_grad for p in net.parameters()]
    return tensors, flags, grads


def assert_unchanged(net: nn.Module, before: tuple) -> None:
    tensors, flags, grads = module_state(net)
    assert flags == before[1] and grads == before[2]
    assert all(torch.equal(tensors[name], value) for name, value in before[0].items())


def test_layers_are_module_paths_in_forward_order(nets):
    model = cnnscope.from_torch(nets["batchnorm"], normalize=MNIST_NORMALIZATION)
    assert model.layer_names == ["conv1", "pool", "conv2", "pool~2", "fc1", "fc2"]
    assert [model.output_shape(n) for n in ("conv1", "pool", "conv2", "pool~2", "fc1")] == [
        (8, 26, 26), (8, 13, 13), (16, 13, 13), (16, 6, 6), (32,)]
    assert model.num_classes == 10 and model.layers_of_kind("pool") == ["pool", "pool~2"]
    sequential = cnnscope.from_torch(nets["sequential"], input_size=(1, 28, 28))
    assert sequential.layer_names == ["features.0", "features.2", "features.3", "features.5",
                                      "classifier.1", "classifier.3"]
    assert sequential.layers_of_kind("conv") == ["features.0", "features.3"]
    chosen = cnnscope.from_torch(nets["sequential"], layers=["features.1", "features"])
    assert chosen.layer_names == ["features.1", "features", "output"]  # the module's output is added last
    assert [chosen.layer_spec(n).kind for n in chosen.layer_names] == ["activation", "block", "dense"]


@pytest.mark.parametrize("which", ["batchnorm", "sequential"])
def test_activations_are_the_modules_own_outputs(nets, digits, which):
    net = nets[which]
    model = cnnscope.from_torch(net, normalize=MNIST_NORMALIZATION)
    direct = direct_outputs(net, (digits - 0.1307) / 0.3081, [n.split("~")[0] for n in model.layer_names])
    expected = {name: direct[name.split("~")[0]][int(name.split("~")[1]) - 1 if "~" in name else 0]
                for name in model.layer_names}
    with torch.no_grad():
        every = model.activations(digits, model.layer_names)
        logits = model(digits)
        for name in model.layer_names:  # alone: the pass stops at the layer
            assert torch.equal(model.activations(digits, [name])[name], expected[name]), name
    assert all(torch.equal(every[name], expected[name]) for name in model.layer_names)
    assert torch.equal(logits, direct["output"][0])
    named = cnnscope.from_torch(net, layers=["bn1"] if which == "batchnorm" else ["features.4"],
                                normalize=MNIST_NORMALIZATION)
    path = named.layer_names[0]
    with torch.no_grad():
        assert torch.equal(named.activations(digits, [path])[path], direct_outputs(
            net, (digits - 0.1307) / 0.3081, [path])[path][0])
        assert torch.equal(named.activations(digits, ["output"])["output"], direct["output"][0])


def test_views_evaluate_and_draw_layers_of_a_torch_model(nets, mnist):
    net = nets["sequential"]
    model = cnnscope.from_torch(net, normalize=MNIST_NORMALIZATION)
    x, y = to_tensor(mnist.test_x[:500]), mnist.test_y[:500]
    result = cnnscope.evaluate(model, x, y)
    with torch.no_grad():
        predicted = net.eval()((x - 0.1307) / 0.3081).argmax(dim=1).numpy()
    net.train()
    assert result.accuracy == pytest.approx(float((predicted == y).mean()))
    assert result.accuracy > 0.7  # 60 steps of training on real digits
    from cnnscope.data.images import dataset_images

    figure = cnnscope.layer_figure(model, dataset_images(mnist, [0, 1]), "features.3")
    assert figure.image.ndim == 3 and "features.3 (conv, Conv2d 3x3): 16 maps of 11x11" in _title(model, "features.3")
    assert len(figure.stats) == 2 and len(figure.stats[0]["maps"]) == 16


def _title(model, layer):
    from cnnscope.figures.activations import layer_title

    return layer_title(model, layer)


def test_receptive_fields_are_the_centres_of_the_gradients_support(nets):
    model = cnnscope.from_torch(nets["sequential"])
    x = torch.rand(32, 1, 28, 28, requires_grad=True)
    for layer in ("features.0", "features.2", "features.3", "features.5"):
        offset, jump = model.receptive_field(layer)
        size = model.output_shape(layer)[-1]
        for i in (0, size - 1):
            out = model.activations(x, [layer])[layer]
            (grad,) = torch.autograd.grad(out[:, :, i, i].sum(), x)
            rows = np.flatnonzero(grad.abs().sum(dim=(0, 1, 3)).numpy() > 0)
            assert (rows.min() + rows.max()) / 2 == pytest.approx(offset + jump * i), (layer, i)
    padded = cnnscope.from_torch(nets["batchnorm"])
    assert padded.receptive_field("conv2") == (1.5, 2.0) and padded.receptive_field("pool~2") == (2.5, 4.0)


def test_oip_dream_and_gradcam_run_on_hooked_frozen_modules_and_change_nothing(nets, digits):
    from helpers import Recorder

    net = nets["batchnorm"]
    recorder = Recorder()
    handle = net.conv2.register_forward_hook(recorder)
    net.requires_grad_(False)
    net.train()
    before = module_state(net)
    try:
        model = cnnscope.from_torch(net, normalize=MNIST_NORMALIZATION)
        run = find_oips(model, map_objectives(model, "conv2", [0, 1, 2, 3]), AscentSettings(steps=30))
        assert run.images.shape == (4, 1, 28, 28) and bool((run.values[-1] > run.values[0]).all())
        again = O.objective_values(O.per_element(run.objectives), model, run.images)
        assert torch.allclose(again, run.values[-1], rtol=1e-4, atol=1e-5)
        photo = digits[3, 0]
        result = dream(model, photo, O.channel("conv2", 5), DreamSettings(steps=10, rounds=2))
        assert result.values[-1] > result.values[0] and not torch.equal(result.luminance[0, 0], photo)
        recorder.calls.clear()
        cam = attribution.gradcam(model, digits[:4], target=[7, 2, 1, 0], layer="conv2", upsample=False)
        assert len(recorder.calls) == 1  # one forward pass of the user's module (its hook sees it)
        assert torch.allclose(cam, manual_gradcam(net, (digits[:4] - 0.1307) / 0.3081, [7, 2, 1, 0]), atol=1e-6)
        assert attribution.gradcam(model, digits[:4]).shape == (4, 28, 28)
        assert attribution.saliency(model, digits[:2]).abs().sum() > 0
        assert_unchanged(net, before)  # the user's hook is still the only one
    finally:
        handle.remove()
        net.requires_grad_(True)


def manual_gradcam(net: nn.Module, x: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """Grad-CAM at conv2 computed by hand: maps A from a hook, weights = spatial mean of d logit / d A."""
    maps = []
    handle = net.conv2.register_forward_hook(lambda module, inputs, output: maps.append(output))
    net.eval()
    try:
        logits = net(x.clone().requires_grad_(True))
    finally:
        handle.remove()
        net.train()
    score = logits[torch.arange(len(targets)), torch.tensor(targets)].sum()
    (grads,) = torch.autograd.grad(score, maps[0])
    return F.relu((grads.mean(dim=(2, 3), keepdim=True) * maps[0]).sum(dim=1)).detach()


def test_the_users_module_keeps_its_flags_through_every_view(nets, digits, mnist):
    net = nets["sequential"]
    net.features.eval()  # mixed flags: features in eval, classifier in train mode
    before = module_state(net)
    model = cnnscope.from_torch(net)
    model.eval()
    cnnscope.evaluate(model, digits, mnist.test_y[:16])
    model.activations(digits, model.layer_names)
    model.train()
    assert_unchanged(net, before)
    net.train()


class NoLayers(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10] * 2


class MapsOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize(("module", "options", "words"), [
    (BatchNormNet(), {"input_size": (1, 32, 32)}, "input size (1, 32, 32) does not fit the module: RuntimeError: mat1"),
    (BatchNormNet(), {"input_size": (3, 28, 28)}, "does not fit the module: RuntimeError"),
    (BatchNormNet(), {"input_size": (1, 28)}, "input_size must be (channels, height, width)"),
    (BatchNormNet(), {"input_size": (1, 28, 30)}, "square"),
    (BatchNormNet(), {"layers": ["conv3"]}, "unknown layer 'conv3'; valid layers: conv1, bn1, pool, conv2, pool~2, fc1, fc2"),
    (SequentialNet(), {"layers": ["features.9"]}, "valid layers: features.0, features.1, features.2, features.3"),
    (NoLayers(), {}, "no usable layers"),
    (MapsOnly(), {}, "must return N x classes scores"),
    (BatchNormNet(), {"normalize": 0.5}, "normalize must be a cnnscope.Normalization"),
    ("not a module", {}, "needs a torch.nn.Module"),
])
def test_bad_input_is_a_one_line_user_error(module, options, words):
    with pytest.raises(UserError) as error:
        cnnscope.from_torch(module, **options)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_layer_in_a_view_lists_the_valid_ones(nets, digits):
    model = cnnscope.from_torch(nets["sequential"])
    with pytest.raises(UserError, match="valid layers: features.0, features.2"):
        model.activations(digits, ["conv1"])
    with pytest.raises(UserError, match="Grad-CAM needs a conv or pool layer"):
        attribution.gradcam(model, digits[:1], layer="classifier.1")


def test_explore_serves_a_torch_model_until_stopped(nets, mnist, tmp_path):
    import httpx

    model = cnnscope.from_torch(nets["sequential"], normalize=MNIST_NORMALIZATION)
    explorer = cnnscope.explore(model, open_browser=False, mnist=mnist, cache_dir=tmp_path)
    try:
        info = httpx.get(f"{explorer.url}/api/info").json()
        assert [layer["name"] for layer in info["layers"]] == model.layer_names
        view = httpx.get(f"{explorer.url}/api/test/7").json()
        with torch.no_grad():
            truth = model.activations(to_tensor(mnist.test_x[7:8]), model.layer_names)
        assert np.allclose(view["layers"]["classifier.1"]["values"], truth["classifier.1"][0].numpy(), atol=1e-5)
        assert np.allclose(view["layers"]["features.3"]["mean"], truth["features.3"][0].mean(dim=(1, 2)).numpy(),
                           atol=1e-5)
        assert view["predicted"] == int(truth["classifier.3"][0].argmax())
        oip = httpx.post(f"{explorer.url}/api/oip/features.3", json={"maps": [2]}, timeout=60).json()
        assert oip["oips"][0]["map"] == 2
        trust = httpx.get(f"{explorer.url}/api/oip/features.3/2/trust", timeout=120).json()["trust"]
        with torch.no_grad():  # the trust figures work on a wrapped model too: the ratio, computed here
            best = float(model.activations(to_tensor(mnist.test_x), ["features.3"])["features.3"][:, 2].mean(
                dim=(1, 2)).max())
        assert trust["ratio"] == pytest.approx(oip["oips"][0]["value"] / best, rel=1e-3)
        assert -1 <= trust["natural_path_mean"] <= 1 and 0 <= trust["outside"] <= 1
        assert isinstance(trust["majority"], bool) and 0 < trust["start_similarity"] <= 1
    finally:
        explorer.stop()
    assert not explorer.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{explorer.url}/api/info")


def test_oips_of_a_colour_model_start_from_colour_noise_and_are_drawn_in_colour(nets, mnist):
    from cnnscope.figures.oip import oip_pair

    gray = nets["sequential"]
    colour = SequentialNet()
    colour.load_state_dict(gray.state_dict())
    first = gray.features[0]
    colour.features[0] = nn.Conv2d(3, 8, 3)
    with torch.no_grad():  # the same filters spread over red, green and blue
        colour.features[0].weight.copy_(first.weight.repeat(1, 3, 1, 1) / 3)
        colour.features[0].bias.copy_(first.bias)
    x = (to_tensor(mnist.test_x[:32]) - 0.1307) / 0.3081
    with torch.no_grad():  # on grey pictures it is the trained net
        assert torch.allclose(colour.eval()(x.repeat(1, 3, 1, 1)), gray.eval()(x), atol=1e-4)
    model = cnnscope.from_torch(colour, input_size=(3, 28, 28), normalize=MNIST_NORMALIZATION)
    targets = map_objectives(model, "features.3", [0, 1, 2, 3])
    run = find_oips(model, targets, AscentSettings(steps=30), restarts=2, precursor=3)
    assert run.images.shape == (4, 3, 28, 28)
    assert float(run.images.std(dim=1).mean()) > 0.1  # the channels differ: colour, not grey
    maps = direct_outputs(colour, run.images, ["features.3"])["features.3"][0]  # the module itself, hooked
    again = torch.stack([maps[i, i].mean() for i in range(4)])
    assert torch.allclose(again, run.final, rtol=1e-4, atol=1e-5)
    assert bool((run.final[run.reacted] > run.values[0][run.reacted]).all()) and bool(run.reacted.any())
    pair = oip_pair(run.images[0])
    assert pair.shape == (84, 169, 3) and float(np.abs(pair[..., 0].astype(int) - pair[..., 2]).mean()) > 5
    with pytest.raises(UserError, match=r"start image must be 1 x 3 x H x W, got shape \(1, 1, 28, 28\)"):
        find_oips(model, targets, AscentSettings(steps=3), start=torch.zeros(1, 1, 28, 28))
    with pytest.raises(UserError, match=r"RGB image \(for this colour network\) must be 1 x 3 x H x W"):
        dream(model, torch.rand(1, 1, 40, 50), O.channel("features.3", 1), DreamSettings(mode="native", steps=2))


def test_a_colour_network_dreams_in_colour(nets):
    from cnnscope.data.photos import photo_from_image, sample_image
    from cnnscope.figures.dream import render_panel

    gray = nets["sequential"]
    red_only = SequentialNet()  # the trained grey net looking at the red channel alone
    red_only.load_state_dict(gray.state_dict())
    first = gray.features[0]
    red_only.features[0] = nn.Conv2d(3, 8, 3)
    with torch.no_grad():
        red_only.features[0].weight.copy_(torch.cat([first.weight, torch.zeros_like(first.weight).repeat(1, 2, 1, 1)], 1))
        red_only.features[0].bias.copy_(first.bias)
    model = cnnscope.from_torch(red_only, input_size=(3, 28, 28), normalize=MNIST_NORMALIZATION)
    photo = photo_from_image(sample_image("flower"), "flower", max_side=80)
    objective = O.channel("features.3", 5)
    unchanged = dream(model, photo, objective, DreamSettings(mode="native", steps=0, rounds=1))
    assert unchanged.luminance.shape == (1, 3, *photo.size)
    assert torch.allclose(unchanged.luminance, photo.rgb())  # no steps: the photo's colours
    result = dream(model, photo, objective, DreamSettings(mode="native", steps=5, rounds=2, jitter=0))
    assert result.values[-1] > result.values[0]
    before = photo.rgb()
    assert torch.equal(result.luminance[:, 1:], before[:, 1:])  # green and blue: unseen, untouched
    assert float((result.luminance[:, 0] - before[:, 0]).abs().max()) > 0.01  # red dreamed
    assert len(result.frames) == 3 and result.frames[-1].shape == (3, *photo.size)
    panel = render_panel(photo, result)
    assert panel.ndim == 3 and panel.shape[2] == 3
    with pytest.raises(UserError, match="a colour network dreams with --mode octaves or native"):
        dream(model, photo, objective, DreamSettings(mode="downscale", steps=2))
