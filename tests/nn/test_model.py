import numpy as np
import pytest
import torch

from cnnscope.errors import CheckpointError, UserError
from cnnscope.nn.checkpoint import load_checkpoint, save_checkpoint
from cnnscope.nn.model import CNN, activations
from cnnscope.nn.spec import ModelSpec, default_spec
from helpers import Recorder


def test_parameter_count_matches_the_articles_keras_summary():
    assert CNN(default_spec()).parameter_count() == 208_982


def test_layer_names_and_shapes_are_the_articles():
    model = CNN()
    assert model.layer_names == ["Conv2D_1", "Max_Pool_1", "Conv2D_2", "Max_Pool_2", "Conv2D_3", "Flatten", "Dense_1", "Dense_2"]
    assert model.output_shape("Conv2D_3") == (128, 3, 3)
    assert model.output_shape("Dense_1") == (100,)
    assert "Total params: 208,982" in model.summary()


def test_conv_prefix_accepts_any_image_size_and_stops_at_the_layer():
    model = CNN()
    out = model.prefix("Conv2D_2")(torch.rand(2, 1, 60, 45))
    assert out.shape == (2, 64, 27, 19)


def test_activations_match_the_full_forward_pass(small_model, mnist):
    from cnnscope.data.mnist import to_tensor

    x = to_tensor(mnist.test_x[:5])
    acts = activations(small_model, x, ["Conv2D_1", "Dense_2"])
    assert list(acts) == ["Conv2D_1", "Dense_2"]
    assert torch.allclose(acts["Dense_2"], small_model(x).detach(), atol=1e-6)
    assert (acts["Conv2D_1"] >= 0).all()  # relu


def test_unknown_layer_lists_the_valid_names():
    with pytest.raises(UserError, match="valid layers: Conv2D_1"):
        CNN().prefix("Conv9")


def test_checkpoint_round_trip_gives_identical_outputs(small_model, mnist, tmp_path):
    from cnnscope.data.mnist import to_tensor

    x = to_tensor(mnist.test_x[:16])
    save_checkpoint(small_model, tmp_path / "ck", recipe="x")
    loaded, config = load_checkpoint(tmp_path / "ck")
    assert config["recipe"] == "x"
    assert torch.equal(loaded(x), small_model(x))


def test_corrupt_checkpoint_is_reported(small_model, tmp_path):
    save_checkpoint(small_model, tmp_path / "ck")
    weights = tmp_path / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "ck")


def test_foreign_config_is_not_a_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a cnnscope checkpoint"):
        load_checkpoint(tmp_path)


def test_spec_round_trips_through_a_dict():
    spec = default_spec()
    assert ModelSpec.from_dict(spec.to_dict()) == spec


# ---- layouts of the articles' list form (article III's li_Conv, li_Pool, li_MLP) --------------

ARTICLE_III_LAYOUTS = {
    # cell 4's illustration: li_Conv 32, 64, 64 and li_MLP 70, 10
    "cell 4": ([(32, (3, 3), "relu"), (64, (3, 3), "relu"), (64, (3, 3), "relu")], [(70, "relu"), (10, "softmax")]),
    # the run with 64 maps at the first layer and 120 dense nodes
    "64 first": ([(64, (3, 3), "relu"), (64, (3, 3), "relu"), (128, (3, 3), "relu")], [(120, "relu"), (10, "softmax")]),
    # the compensating run with 32 maps at the first layer
    "32 first": ([(32, (3, 3), "relu"), (64, (3, 3), "relu"), (128, (3, 3), "relu")], [(120, "relu"), (10, "softmax")]),
    # the commented-out third dense layer li_dense_2 = [30, 0]
    "three dense": ([(32, (3, 3), "relu"), (64, (3, 3), "relu"), (128, (3, 3), "relu")],
                    [(100, "relu"), (30, "relu"), (10, "softmax")]),
}


def keras_counts(conv, dense, pools=2, size=28) -> list[int]:
    """Keras's Param # of each Conv2D and Dense layer, by hand: conv (k*k*in + 1)*filters on valid
    3x3 convolutions with a 2x2 pool after every conv but the last; dense (in + 1)*units."""
    counts, channels = [], 1
    for index, (filters, (k, _), _) in enumerate(conv):
        counts.append((k * k * channels + 1) * filters)
        channels, size = filters, size - k + 1
        if index < pools:
            size //= 2
    features = channels * size * size
    for units, _ in dense:
        counts.append((features + 1) * units)
        features = units
    return counts


@pytest.mark.parametrize("name", list(ARTICLE_III_LAYOUTS))
def test_article_iii_layouts_have_keras_parameter_counts(name):
    conv, dense = ARTICLE_III_LAYOUTS[name]
    model = CNN(ModelSpec.from_lists(conv, None, dense))
    expected = keras_counts(conv, dense)
    weighted = model.layers_of_kind("conv", "dense")
    assert [sum(p.numel() for p in model.body.get_submodule(n).parameters()) for n in weighted] == expected
    summary = model.summary()
    assert f"Total params: {sum(expected):,}" in summary
    for layer_name, count in zip(weighted, expected, strict=True):
        row = next(line for line in summary.splitlines() if line.startswith(layer_name + " "))
        assert row.split()[-1] == f"{count:,}"
    assert model.layer_names[:3] == ["Conv2D_1", "Max_Pool_1", "Conv2D_2"]
    assert model.layer_names[-1] == f"Dense_{len(dense)}"


def test_the_default_layout_is_the_seed_cnn():
    assert ModelSpec.from_lists().layers == default_spec().layers
    assert CNN(default_spec()).parameter_count() == 208_982  # the articles' Keras summary
    assert sum(keras_counts(*ARTICLE_III_LAYOUTS["32 first"])) == 320 + 18_496 + 73_856 + 1152 * 120 + 120 + 1210


def test_fewer_pools_follow_the_first_conv_layers():
    spec = ModelSpec.from_lists([(8, 3, "tanh"), (8, 3, "elu"), (8, 3, "sigmoid")], [2], [(10, "sigmoid")])
    model = CNN(spec)
    assert model.layer_names == ["Conv2D_1", "Max_Pool_1", "Conv2D_2", "Conv2D_3", "Flatten", "Dense_1"]
    assert model.output_shape("Conv2D_3") == (8, 9, 9)  # 28 -> 26 -> 13 -> 11 -> 9
    no_pools = CNN(ModelSpec.from_lists([(4, 5, "relu")] * 2, [], [(10, "softmax")]))
    assert no_pools.output_shape("Conv2D_2") == (4, 20, 20)


@pytest.mark.parametrize("conv, pools, dense, message", [
    ([(32, 3, "relu")] * 3, [2, 2, 2], None, "3 pools for 3 conv layers: at most 2"),
    ([(8, 3, "relu"), (8, 3, "relu"), (8, 5, "relu"), (8, 1, "relu")], [2, 2, 2], None,
     "Max_Pool_3 (2x2) on the 1x1 map of Conv2D_3 leaves no pixels"),
    ([(32, 3, "relu"), (64, 3, "relu"), (128, 7, "relu")], None, None,
     "the 7x7 kernel of Conv2D_3 is larger than its 5x5 input"),
    ([(32, 3, "relu")] * 4, None, None, "the 3x3 kernel of Conv2D_4 is larger than its 1x1 input"),
    ([(0, 3, "relu")], [], None, "Conv2D_1 needs at least 1 filter, got 0"),
    ([(-4, 3, "relu")], [], None, "Conv2D_1 needs at least 1 filter, got -4"),
    (None, None, [(0, "relu"), (10, "softmax")], "Dense_1 needs at least 1 unit, got 0"),
    ([(32, 3, "swish")], [], None, "unknown activation 'swish' for Conv2D_1; allowed: relu, sigmoid, elu, tanh"),
    (None, None, [(100, "elu"), (10, "softmax")], "unknown activation 'elu' for Dense_1 (hidden layer); allowed: relu, sigmoid, tanh"),
    (None, None, [(100, "relu"), (10, "relu")], "unknown activation 'relu' for Dense_2 (output layer); allowed: softmax, sigmoid"),
    (None, None, [(100, "softmax"), (10, "softmax")], "for Dense_1 (hidden layer)"),
    ([(32, 0, "relu")], [], None, "kernel of Conv2D_1 must be at least 1"),
    ([], [], None, "at least one conv layer"),
])
def test_layouts_that_do_not_fit_are_refused(conv, pools, dense, message):
    with pytest.raises(UserError) as info:
        ModelSpec.from_lists(conv, pools, dense)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---- the per-pixel standardisation (the articles' StandardScaler) -----------------------------


def test_per_pixel_statistics_are_standard_scalers(mnist):
    from sklearn.preprocessing import StandardScaler

    from cnnscope.nn.model import per_pixel_statistics

    images = mnist.train_x[:5000]
    mean, std = per_pixel_statistics(images)
    scaler = StandardScaler().fit(images.reshape(len(images), -1) / 255.0)
    assert mean.shape == std.shape == (1, 28, 28)
    assert np.allclose(mean.flatten().numpy(), scaler.mean_, rtol=1e-6, atol=1e-7)
    assert np.allclose(std.flatten().numpy(), scaler.scale_, rtol=1e-6, atol=1e-7)
    constant = scaler.var_ == 0
    assert constant.sum() > 50 and np.all(std.flatten().numpy()[constant] == 1.0)  # the border pixels
    raw_mean, raw_std = per_pixel_statistics(images, fitted_on="raw")  # the articles fitted 0..255 values
    raw = StandardScaler().fit(images.reshape(len(images), -1).astype(np.float32))
    assert np.allclose(raw_mean.flatten().numpy() * 255, raw.mean_, rtol=1e-6)
    assert np.allclose(raw_std.flatten().numpy() * 255, raw.scale_, rtol=1e-6)
    assert np.allclose(raw_std.flatten().numpy()[constant], 1 / 255)


def test_per_pixel_model_standardises_like_the_scaler_and_keeps_its_statistics(mnist, tmp_path):
    from sklearn.preprocessing import StandardScaler

    from cnnscope.data.mnist import to_tensor
    from cnnscope.nn.model import per_pixel_statistics
    from cnnscope.nn.spec import Normalization

    model = CNN(ModelSpec.from_lists(normalization=Normalization("per_pixel")))
    model.normalize.set_pixel_statistics(*per_pixel_statistics(mnist.train_x[:3000]))
    scaler = StandardScaler().fit(mnist.train_x[:3000].reshape(3000, -1) / 255.0)
    x = to_tensor(mnist.test_x[:8])
    expected = scaler.transform(mnist.test_x[:8].reshape(8, -1) / 255.0).reshape(8, 1, 28, 28)
    assert np.allclose(model.normalize(x).numpy(), expected, atol=1e-5)
    save_checkpoint(model, tmp_path / "ck")
    loaded, config = load_checkpoint(tmp_path / "ck")
    assert config["spec"]["normalization"]["mode"] == "per_pixel"
    assert torch.equal(loaded.normalize.pixel_std, model.normalize.pixel_std)
    assert torch.equal(loaded(x), model(x))
    assert "normalisation: per_pixel (a mean and std for each of the 784 pixels" in loaded.summary()
    with pytest.raises(UserError, match="must have the input's shape"):
        model.normalize.set_pixel_statistics(torch.zeros(28, 28), torch.ones(28, 28))


def _hooked_and_frozen(model):
    """The two user models issue 14/15 name: a forward hook holding a non-leaf tensor (which
    `copy.deepcopy` refuses) and parameters with requires_grad=False."""
    recorder = Recorder()
    model.body.Conv2D_2.register_forward_hook(recorder)
    model.requires_grad_(False)
    return recorder.calls



def test_inference_copy_leaves_hooks_and_user_state_behind(small_model, mnist):
    import copy

    from cnnscope.data.mnist import to_tensor
    from cnnscope.nn.inference import inference_copy

    small_model.train()
    calls = _hooked_and_frozen(small_model)
    with pytest.raises(RuntimeError):
        copy.deepcopy(small_model)  # what the ascent used to do
    fast = inference_copy(small_model, channels_last=True)
    x = to_tensor(mnist.test_x[:8])
    small_model.eval()
    expected = small_model(x)
    assert len(calls) == 1
    got = fast(x)
    assert len(calls) == 1  # the copy runs without the user's hook
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not fast.training and fast.body.Conv2D_2.weight.is_contiguous(memory_format=torch.channels_last)
    assert small_model.body.Conv2D_2.weight.is_contiguous()  # the original keeps its layout
    assert fast.body.Conv2D_2.weight.data_ptr() != small_model.body.Conv2D_2.weight.data_ptr()
    assert fast.body.Dense_1.weight.data_ptr() == small_model.body.Dense_1.weight.data_ptr()  # shared values
    assert len(small_model.body.Conv2D_2._forward_hooks) == 1


def test_inference_copy_keeps_tied_parameters_and_shared_modules_shared():
    from cnnscope.nn.inference import inference_copy

    shared = torch.nn.Linear(4, 4)
    net = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    fast = inference_copy(net)
    assert fast[0] is fast[2] and fast[0] is not shared
    x = torch.randn(3, 4)
    torch.testing.assert_close(fast(x), net(x))
    assert not fast[0].weight.requires_grad and shared.weight.requires_grad


@pytest.mark.parametrize("pool_padding", ["valid", "same"])
def test_fused_forward_equals_forward_bit_for_bit(mnist, pool_padding):
    """Pooling before ReLU (the training's forward pass): the same logits and gradients, bit for bit."""
    from cnnscope.data.mnist import to_tensor
    from cnnscope.nn.spec import LayerSpec, ModelSpec

    torch.manual_seed(3)
    spec = ModelSpec((LayerSpec("conv", "C1", 8, (3, 3), "relu"), LayerSpec("pool", "P1", kernel=(3, 3), padding=pool_padding),
                      LayerSpec("conv", "C2", 6, (3, 3), "relu"), LayerSpec("pool", "P2", kernel=(2, 2)),
                      LayerSpec("flatten", "F"), LayerSpec("dense", "D", 10)))
    for model in (CNN(), CNN(spec)):
        x = to_tensor(mnist.test_x[:16]).requires_grad_(True)
        results = []
        for run in (model.forward, model.fused_forward):
            model.zero_grad()
            out = run(x)
            (grad_x,) = torch.autograd.grad(out.square().sum(), x, retain_graph=True)
            out.square().sum().backward()
            results.append((out.detach(), grad_x, [p.grad.clone() for p in model.parameters()]))
        (a, ga, wa), (b, gb, wb) = results
        assert torch.equal(a, b) and torch.equal(ga, gb)
        assert all(torch.equal(u, v) for u, v in zip(wa, wb, strict=True))
