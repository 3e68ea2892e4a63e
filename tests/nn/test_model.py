import pytest
import torch

from cnnscope.errors import CheckpointError, UserError
from cnnscope.nn.checkpoint import load_checkpoint, save_checkpoint
from cnnscope.nn.model import CNN, ModelSpec, activations, default_spec


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
