"""The ascent's network (optvis/networks.py) against the model itself: the same values and input
gradients, to float rounding, for every kind of objective and for other layouts."""

from __future__ import annotations

import pytest
import torch

from cnnscope.data.mnist import to_tensor
from cnnscope.nn.model import CNN, per_image_standardize
from cnnscope.nn.spec import LayerSpec, ModelSpec
from cnnscope.optvis import objectives as O
from cnnscope.optvis.networks import FastCNN, FirstConv, PlainNetwork, ascent_network


def starts(mnist, n: int) -> torch.Tensor:
    """Real test digits in the network's standardised input space."""
    return per_image_standardize(to_tensor(mnist.test_x[:n]).float())


def value_and_gradient(network, x: torch.Tensor, objective) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    value = network.values(x, objective)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad


def reference(model, x: torch.Tensor, objective) -> tuple[torch.Tensor, torch.Tensor]:
    """The objective through the model's own forward pass (NCHW, autograd's kernels)."""
    x = x.clone().requires_grad_(True)
    value = objective(O.capture(model.eval(), x, objective))
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad


def assert_close(got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor, torch.Tensor]) -> None:
    (value, grad), (want_value, want_grad) = got, want
    assert value.shape == want_value.shape
    scale = want_value.abs().max().clamp_min(1e-6)
    assert (value - want_value).abs().max() <= 1e-5 * scale
    assert want_grad.abs().max() > 0
    assert (grad - want_grad).abs().max() <= 1e-5 * want_grad.abs().max()


def objectives_of(model: CNN, n: int) -> dict[str, O.Objective]:
    convs, denses = model.layers_of_kind("conv"), model.layers_of_kind("dense")
    last_conv = convs[-1]
    maps = model.output_shape(last_conv)[0]
    return {
        "zoo of the last conv layer": O.per_element([O.channel(last_conv, i % maps) for i in range(n)]),
        "zoo of the first conv layer": O.per_element([O.channel(convs[0], i % 4) for i in range(n)]),
        "one map of each conv layer": sum((O.channel(name, 1) for name in convs), 0),
        "one map, alone": O.channel(convs[1], 3),
        "a node": O.node(convs[1], 2, 1, 1),
        "a whole layer": O.layer(convs[0]),
        "a logit": O.logit(4),
        "dense units": O.per_element([O.channel(denses[0], i) for i in range(n)]),
    }


@pytest.mark.parametrize("name", ["zoo of the last conv layer", "zoo of the first conv layer",
                                  "one map of each conv layer", "one map, alone", "a node", "a whole layer",
                                  "a logit", "dense units"])
def test_fast_network_has_the_models_values_and_gradients(small_model, mnist, name):
    x = starts(mnist, 12)
    objective = objectives_of(small_model, 12)[name]
    network = ascent_network(small_model, x.device)
    assert isinstance(network, FastCNN)
    assert_close(value_and_gradient(network, x, objective), reference(small_model, x, objective))


def test_pooling_before_relu_is_exact_and_picks_are_used(small_model, mnist):
    """Pool-then-ReLU equals ReLU-then-pool bit for bit; a pick computes one map per image."""
    x = starts(mnist, 8)
    network = ascent_network(small_model, x.device)
    with torch.no_grad():
        fused = network.activations(x, ["Max_Pool_2"])["Max_Pool_2"]
        plain = PlainNetwork(network.model).activations(x, ["Max_Pool_2"])["Max_Pool_2"]
    assert torch.equal(fused, plain)
    objective = O.per_element([O.channel("Conv2D_3", i) for i in range(8)])
    assert objective.picks[0] == "Conv2D_3"
    assert torch.equal(objective.picks[1], torch.arange(8))
    assert O.channel("Conv2D_2", 5).picks == ("Conv2D_2", 5)
    assert (O.channel("Conv2D_2", 5) * 2.0).picks is None  # algebra results read whole layers


def test_first_conv_gradient_equals_the_transposed_convolution(mnist):
    torch.manual_seed(0)
    x = starts(mnist, 6).requires_grad_(True)
    weight, bias = torch.randn(7, 1, 3, 5), torch.randn(7)
    out = FirstConv.apply(x, weight, bias)
    assert torch.equal(out, torch.nn.functional.conv2d(x.detach(), weight, bias))
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, upstream)
    want = torch.nn.functional.conv_transpose2d(upstream, weight)
    assert (grad - want).abs().max() <= 1e-5 * want.abs().max()


def layout(*layers: LayerSpec) -> CNN:
    torch.manual_seed(1)
    return CNN(ModelSpec(layers)).eval()


OTHER_LAYOUTS = {
    "same padding, tanh first, same pool": (
        LayerSpec("conv", "C1", 8, (5, 5), "tanh", "same"), LayerSpec("pool", "P1", kernel=(2, 2), padding="same"),
        LayerSpec("conv", "C2", 6, (3, 3), "relu", "same"), LayerSpec("pool", "P2", kernel=(3, 3)),
        LayerSpec("flatten", "F"), LayerSpec("dense", "D", 10)),
    "even kernels, relu first, elu after": (
        LayerSpec("conv", "C1", 4, (2, 2), "relu"), LayerSpec("pool", "P1", kernel=(2, 2)),
        LayerSpec("conv", "C2", 5, (4, 4), "elu", "same"), LayerSpec("dropout", "Drop", rate=0.5),
        LayerSpec("flatten", "F"), LayerSpec("dense", "D1", 7, activation="relu"), LayerSpec("dense", "D2", 10)),
    "pools that drop rows (C2 reads 23 x 23 of the input)": (
        LayerSpec("conv", "C1", 6, (3, 3), "relu"), LayerSpec("pool", "P1", kernel=(3, 3)),
        LayerSpec("conv", "C2", 5, (2, 2), "relu"), LayerSpec("pool", "P2", kernel=(2, 2)),
        LayerSpec("flatten", "F"), LayerSpec("dense", "D", 10)),
}


@pytest.mark.parametrize("name", sorted(OTHER_LAYOUTS))
def test_other_layouts_match_too(mnist, name):
    model = layout(*OTHER_LAYOUTS[name])
    x = starts(mnist, 5)
    network = ascent_network(model, x.device)
    convs = model.layers_of_kind("conv")
    for objective in (O.per_element([O.channel(convs[-1], i % 4) for i in range(5)]),
                      O.per_element([O.channel(convs[0], i % 3) for i in range(5)]),
                      O.layer(convs[-1]), O.logit(2), O.channel(convs[-1], 1)):
        assert_close(value_and_gradient(network, x, objective), reference(model, x, objective))


def test_the_input_is_cropped_to_what_the_read_layer_sees(mnist):
    model = layout(*OTHER_LAYOUTS["pools that drop rows (C2 reads 23 x 23 of the input)"])
    network = ascent_network(model, torch.device("cpu"))
    x = starts(mnist, 3)
    assert network._cropped(x, model.layer_names.index("P2")).shape[-2:] == (23, 23)
    assert network._cropped(x, model.layer_names.index("C1")).shape[-2:] == (28, 28)
    assert network._cropped(x, model.layer_names.index("D")).shape[-2:] == (28, 28)  # dense layers see all
    value, grad = value_and_gradient(network, x, O.channel("P2", 2))
    assert torch.equal(grad[..., 23:, :], torch.zeros_like(grad[..., 23:, :]))
    assert_close((value, grad), reference(model, x, O.channel("P2", 2)))


def test_large_inputs_compute_the_whole_layer(small_model, mnist, monkeypatch):
    """Above PICK_LIMIT gathered values (photos) the layer is computed whole: the same numbers."""
    from cnnscope.optvis import networks

    x = starts(mnist, 4)
    objective = O.per_element([O.channel("Conv2D_2", i) for i in (0, 5, 9, 63)])
    network = ascent_network(small_model, x.device)
    picked = value_and_gradient(network, x, objective)
    monkeypatch.setattr(networks, "PICK_LIMIT", 0)
    whole = value_and_gradient(network, x, objective)
    assert_close(whole, picked)
    assert_close(whole, reference(small_model, x, objective))
