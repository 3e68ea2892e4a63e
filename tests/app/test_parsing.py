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


# ---- property-based: any text parses to the documented result or is a UserError -------------
import json  # noqa: E402

from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,  # noqa: E402
)

from cnnscope.app.limits import MAX_TEXT  # noqa: E402
from cnnscope.app.parsing import (  # noqa: E402
    bounded,
    objective_from_text,
    parse_conv_layers,
    parse_dense_layers,
    parse_digits,
    parse_grid,
    parse_layers,
    parse_methods,
    parse_pools,
    read_layout_file,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# text with the characters the parsers split on, digits (also non-ASCII ones), signs and noise
HOSTILE = st.text(alphabet=st.sampled_from(list("0123456789,:-x.e+ _aZ\x00\u0663\u00b2\u2212\n")) | st.characters(),
                  max_size=40)


def parses_or_refuses(parse, *args):
    """parse(*args), or None if it raised a UserError; any other exception fails the test."""
    try:
        return parse(*args)
    except UserError as exc:
        assert "\n" not in str(exc)  # one line for the CLI
        return None


@FAST
@given(text=HOSTILE, count=st.integers(1, 300))
def test_any_map_list_is_numbers_in_range_or_a_user_error(text, count):
    numbers = parses_or_refuses(parse_list, text, "map", count)
    if numbers is not None:
        assert len(numbers) == len(set(numbers)) <= count and all(0 <= n < count for n in numbers)
        assert parse_list(",".join(map(str, numbers)), "map", count) == numbers  # round trip


@FAST
@given(ranges=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 40)), min_size=1, max_size=8))
def test_a_list_of_ranges_is_their_union_in_order_of_appearance(ranges):
    text = ",".join(f"{low}-{min(low + width, 127)}" if width else str(low) for low, width in ranges)
    expected = list(dict.fromkeys(n for low, width in ranges for n in range(low, min(low + width, 127) + 1)))
    assert parse_list(text, "map", 128) == expected


@pytest.mark.parametrize("text", ["0-999999999", "5-99999999999999999999", "0-" + "9" * 5000, "1,1" * 6000])
def test_huge_ranges_and_texts_are_refused_before_they_are_expanded(text):
    with pytest.raises(UserError, match="out of range|not a number|characters long"):
        parse_list(text, "map", 128)


@FAST
@given(text=HOSTILE)
def test_any_layer_mix_map_or_objective_text_is_an_objective_or_a_user_error(text):
    for parse in (parse_layer_mix, parse_map, lambda t: objective_from_text([t]), lambda t: objective_from_text(layers=t)):
        objective = parses_or_refuses(parse, text)
        assert objective is None or objective.layers


@FAST
@given(parts=st.lists(st.tuples(st.sampled_from(["Conv2D_1", "Conv2D_3", "Dense_1"]),
                                st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=5))
def test_a_layer_mix_weighs_each_layer_by_its_number(parts):
    mix = parse_layer_mix(",".join(f"{name}:{weight!r}" for name, weight in parts))
    acts = {name: torch.ones(1, 2, 3, 3) for name in ("Conv2D_1", "Conv2D_3", "Dense_1")}
    scale = sum(abs(weight) for _, weight in parts)  # float32 sums: the error grows with the weights' size
    assert mix(acts).item() == pytest.approx(sum(weight for _, weight in parts), abs=1e-6 * scale + 1e-4)


@FAST
@given(text=HOSTILE)
def test_any_node_text_is_a_node_or_a_user_error(text):
    objective = parses_or_refuses(parse_node, text, "Conv2D_3", None)
    if objective is not None:
        target = objective.targets[0]
        assert objective.kind == "node" and isinstance(target.map, int)
        where = "" if target.y is None else f":{target.y},{target.x}"
        again = parse_node(f"{target.map}{where}", "Conv2D_3", None).targets[0]  # round trip
        assert (again.map, again.y, again.x) == (target.map, target.y, target.x)


@FAST
@given(unit=st.integers(0, 10**6), y=st.integers(0, 99), x=st.integers(0, 99))
def test_a_node_text_names_its_map_and_pixel(unit, y, x):
    target = parse_node(f"{unit}:{y},{x}", "Conv2D_3", None).targets[0]
    assert (target.layer, target.map, target.y, target.x) == ("Conv2D_3", unit, y, x)
    assert parse_node(str(unit), "Dense_1", None).targets[0].map == unit


@FAST
@given(text=HOSTILE)
def test_any_digits_numbers_indices_methods_or_normalisation_text_parses_or_is_refused(text):
    digits = parses_or_refuses(parse_digits, text)
    assert digits is None or (digits[0] != digits[1] and all(0 <= d <= 9 for d in digits))
    for kind in (int, float):
        values = parses_or_refuses(parse_numbers, text, "noise scale", kind)
        assert values is None or all(isinstance(v, kind) for v in values)
    indices = parses_or_refuses(parse_indices, [text])
    if indices is not None:
        assert parse_indices([",".join(map(str, indices))]) == indices  # round trip
    methods = parses_or_refuses(parse_methods, text)
    assert methods is None or len(set(methods)) == len(methods) > 0
    normalization = parses_or_refuses(parse_normalization, text)
    assert normalization is None or normalization.mode in ("none", "global", "per_image", "per_pixel")


def format_conv(layers) -> str:
    return ",".join(f"{filters}:{kernel[0]}x{kernel[1]}:{activation}" for filters, kernel, activation in layers)


@FAST
@given(text=HOSTILE)
def test_any_layout_text_is_a_layout_or_a_user_error(text):
    conv = parses_or_refuses(parse_conv_layers, text)
    if conv is not None:
        assert parse_conv_layers(format_conv(conv)) == conv  # round trip
    pools = parses_or_refuses(parse_pools, text)
    if pools is not None:
        assert parse_pools(",".join(f"{h}x{w}" for h, w in pools) or "none") == pools
    dense = parses_or_refuses(parse_dense_layers, text)
    if dense is not None:
        assert parse_dense_layers(",".join(f"{units}:{activation}" for units, activation in dense)) == dense


@FAST
@given(conv=st.lists(st.tuples(st.integers(1, 512), st.tuples(st.integers(1, 7), st.integers(1, 7)),
                               st.sampled_from(["relu", "sigmoid", "elu", "tanh"])), min_size=1, max_size=4))
def test_a_conv_layout_reads_back_as_written(conv):
    assert parse_conv_layers(format_conv(conv)) == tuple(conv)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                        ["conv", "pools", "dense", "seed", "x"]), inner, max_size=4), max_leaves=20)


@FAST
@given(value=JSON)
def test_any_json_layout_or_grid_file_is_read_or_refused(value, tmp_path):
    path = tmp_path / "file.json"
    path.write_text(json.dumps(value))
    layout = parses_or_refuses(read_layout_file, str(path))
    assert layout is None or set(layout) <= {"conv", "pools", "dense"}
    grid = parses_or_refuses(parse_grid, [], str(path))
    assert grid is None or all(isinstance(values, list) for values in grid.values())


@FAST
@given(entries=st.lists(HOSTILE, max_size=3))
def test_any_grid_entry_is_a_grid_or_a_user_error(entries):
    grid = parses_or_refuses(parse_grid, entries)
    assert grid is None or all(isinstance(values, list) and values for values in grid.values())


@FAST
@given(text=HOSTILE)
def test_any_layer_list_names_layers_of_the_model_or_is_refused(text, small_model):
    layers = parses_or_refuses(parse_layers, small_model, text)
    assert layers is None or set(layers) <= set(small_model.layer_names)


@FAST
@given(value=st.one_of(st.floats(), st.integers(-10**30, 10**30), st.booleans(), st.none()))
def test_bounded_numbers_are_whole_and_within_their_limits(value):
    number = parses_or_refuses(bounded, "size", value, 1, 512)
    assert number is None or (1 <= number <= 512 and number == value)


def test_texts_over_the_limit_are_refused_before_they_are_split():
    for parse, args in ((parse_list, ("map", 128)), (parse_layer_mix, ()), (parse_conv_layers, ())):
        with pytest.raises(UserError, match=f"the limit is {MAX_TEXT}"):
            parse("1," * MAX_TEXT, *args)

