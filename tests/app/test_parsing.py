"""Parsing user text: layer mixes, maps, normalisations, target lists, nodes, indices, whole numbers."""

from __future__ import annotations

import pytest
import torch

from cnnscope.app.parsing import (
    parse_indices,
    parse_layer_mix,
    parse_list,
    parse_map,
    parse_node,
    parse_normalization,
    parse_numbers,
    whole,
)
from cnnscope.errors import UserError


def test_parse_layer_mix_and_map():
    mix = parse_layer_mix("Conv2D_2:1.0, Conv2D_3:2.5")
    assert set(mix.layers) == {"Conv2D_2", "Conv2D_3"}
    acts = {"Conv2D_2": torch.ones(2, 4, 3, 3), "Conv2D_3": torch.full((2, 8, 2, 2), 2.0)}
    assert torch.allclose(mix(acts), torch.tensor([1.0 + 5.0, 6.0]))
    assert torch.allclose(parse_layer_mix("Conv2D_3")(acts), torch.tensor([2.0, 2.0]))
    single = parse_map("Conv2D_3:5")
    assert single.kind == "channel" and single.targets[0].map == 5
    double = parse_map("Conv2D_3:5,1")
    assert [t.map for t in double.targets] == [5, 1]
    for bad in ["", "Conv2D_2:x", "Conv2D_2:nan", "Conv2D_2:1,,Conv2D_3", ":2"]:
        with pytest.raises(UserError):
            parse_layer_mix(bad)
    for bad in ["Conv2D_3", "Conv2D_3:", "Conv2D_3:a", ":5"]:
        with pytest.raises(UserError):
            parse_map(bad)


@pytest.mark.parametrize("text,mode,mean,std", [
    ("none", "none", 0.0, 1.0),
    ("per_image", "per_image", 0.0, 1.0),
    ("per-image", "per_image", 0.0, 1.0),
    ("global", "global", 0.1307, 0.3081),
    ("0.5,0.25", "global", 0.5, 0.25),
    ("0,0.00392156862745098", "global", 0.0, 1 / 255),
])
def test_parse_normalization(text, mode, mean, std):
    normalization = parse_normalization(text)
    assert (normalization.mode, normalization.mean, normalization.std) == (mode, pytest.approx(mean), pytest.approx(std))


def test_target_lists_expand_ranges_and_check_them():
    assert parse_list("all", "map", 128) is None
    assert parse_list("3", "map", 128) == [3]
    assert parse_list("0-3, 56,2", "map", 128) == [0, 1, 2, 3, 56]
    assert parse_list("5,5", "map", 10) == [5]
    for bad, message in [("9-3", "runs backwards"), ("x", "not a number or range"), ("128", "valid maps are 0..127"),
                         ("-1", "out of range")]:
        with pytest.raises(UserError, match=message):
            parse_list(bad, "map", 128)


def test_nodes_numbers_indices_and_whole_numbers(small_model):
    centre = parse_node("120", "Conv2D_3", small_model)
    assert centre.targets[0].map == 120 and centre.targets[0].y is None
    pixel = parse_node("7:1,2", "Conv2D_3", small_model)
    assert (pixel.targets[0].y, pixel.targets[0].x) == (1, 2)
    with pytest.raises(UserError, match="MAP:Y,X"):
        parse_node("7:1", "Conv2D_3", small_model)
    assert parse_numbers("3,7,14", "noise scale", int) == [3, 7, 14]
    with pytest.raises(UserError, match="not a whole number"):
        parse_numbers("3,x", "noise scale", int)
    with pytest.raises(UserError, match="finite"):
        parse_numbers("0.5,inf", "noise factor")
    assert parse_indices(["3,4", "10"]) == [3, 4, 10]
    with pytest.raises(UserError, match="not a whole number"):
        parse_indices(["3.5"])
    assert whole("steps", 600.0, 1) == 600
    for bad in (1.5, float("nan"), None, True):
        with pytest.raises(UserError, match="whole number"):
            whole("steps", bad, 1)
    with pytest.raises(UserError, match=">= 1"):
        whole("steps", 0.0, 1)
    assert torch.is_tensor(parse_layer_mix("Conv2D_1")({"Conv2D_1": torch.ones(1, 2, 3, 3)}))
    assert parse_map("Conv2D_1:0").name == "Conv2D_1:0"


def test_layout_options_read_like_article_iiis_lists(tmp_path):
    import json

    from cnnscope.app.parsing import (
        parse_conv_layers,
        parse_dense_layers,
        parse_pools,
        read_layout_file,
    )

    assert parse_conv_layers("32:3:relu, 64:3x5:TANH,16:2") == (
        (32, (3, 3), "relu"), (64, (3, 5), "tanh"), (16, (2, 2), "relu"))
    assert parse_pools("2,3x2") == ((2, 2), (3, 2)) and parse_pools("none") == ()
    assert parse_dense_layers("100:relu,10:softmax") == parse_dense_layers("100,10") == ((100, "relu"), (10, "softmax"))
    path = tmp_path / "layout.json"  # article III's li_Conv, li_Pool, li_MLP with the activation codes
    path.write_text(json.dumps({"conv": [[32, [3, 3], 0], [64, [3, 3], 2], [128, 3, "tanh"]],
                                "pools": [[[2, 2]], [2, 2]], "dense": [[100, 1], [10, 0]]}))
    assert read_layout_file(str(path)) == {
        "conv": ((32, (3, 3), "relu"), (64, (3, 3), "elu"), (128, (3, 3), "tanh")),
        "pools": ((2, 2), (2, 2)), "dense": ((100, "sigmoid"), (10, "softmax"))}
