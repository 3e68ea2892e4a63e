"""Training settings: the recipes carry the articles' values; bad values name the problem."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest

from cnnscope.errors import UserError
from cnnscope.training.settings import TrainSettings, recipe_settings, settings_from_dict


def test_seed_recipe_has_the_articles_settings():
    seed = recipe_settings("seed")
    assert (seed.optimizer, seed.lr, seed.momentum, seed.schedule, seed.decay_rate, seed.decay_steps,
            seed.l2, seed.batch_size) == ("rmsprop", 1e-3, 0.8, "power", 1e-3, 1, 1e-3, 64)


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


def test_bad_settings_name_their_parameter():
    with pytest.raises(UserError) as error:
        TrainSettings(momentum=1.5).validate()
    assert error.value.parameter == "momentum"
    with pytest.raises(UserError) as error:
        TrainSettings(epochs=0).validate()
    assert error.value.parameter == "epochs"


def test_settings_from_a_stored_dict_ignore_unknown_keys():
    stored = {**asdict(TrainSettings(epochs=7)), "from_a_newer_version": 1}
    assert settings_from_dict(stored) == TrainSettings(epochs=7)


def test_a_layout_survives_the_json_of_a_checkpoint():
    import json

    settings = TrainSettings(conv=((16, (3, 3), "tanh"), (32, (5, 5), "elu")), pools=(), dense=((10, "sigmoid"),),
                             normalize="per_pixel").validate()
    stored = settings_from_dict(json.loads(json.dumps(asdict(settings))))
    assert stored == settings and stored.conv[1][1] == (5, 5)
    assert stored.layout_text() == "conv 16:3x3:tanh,32:5x5:elu, pools none, dense 10:sigmoid"
    assert [layer.name for layer in stored.model_spec().layers] == ["Conv2D_1", "Conv2D_2", "Flatten", "Dense_1"]
    assert TrainSettings().model_spec().layers == TrainSettings(pools=((2, 2), (2, 2))).model_spec().layers
    with pytest.raises(UserError, match="the output layer Dense_1 has 5 units; MNIST needs 10"):
        TrainSettings(dense=((5, "softmax"),)).validate()
    with pytest.raises(UserError, match="unknown normalisation 'z'"):
        TrainSettings(normalize="z").validate()


def test_fast_recipe_is_the_default_over_fewer_epochs_with_a_weight_average():
    fast, default = recipe_settings("fast").validate(), recipe_settings("default")
    assert fast.recipe == "fast" and (fast.epochs, fast.ema) == (3, 0.99) and default.ema == 0
    assert replace(fast, recipe="default", epochs=default.epochs, ema=0.0) == default
