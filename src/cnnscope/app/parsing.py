"""User text to library values: layer mixes, maps, digits, normalisations, nodes, layers,
attribution methods, network layouts (the articles' lists for --conv, --pools, --dense, --spec)
and sweep grids.

Every parser raises `UserError` with a message that names the bad text and shows a valid
example, so the CLI and the explorer report bad input in one line. The numbers, bounded values
and lists of numbers these build on live in `app.number_parsing` and are importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnscope.analysis.attribution import METHODS
from cnnscope.analysis.layers import viewable_layers
from cnnscope.app.number_parsing import (  # numbers, bounded values and lists, also importable from here
    _parse_int,
    _parse_number,
    bounded as bounded,
    check_text as check_text,
    finite as finite,
    number as number,
    parse_indices as parse_indices,
    parse_list as parse_list,
    parse_numbers as parse_numbers,
    whole as whole,
    whole_text as whole_text,
)
from cnnscope.errors import UserError, check_choice
from cnnscope.nn.keras_import import NORMALIZE_CHOICES
from cnnscope.nn.spec import Normalization, default_spec
from cnnscope.optvis import objectives as O
from cnnscope.optvis.objectives import Objective, channel, layer, weighted


def parse_layer_mix(text: str) -> Objective:
    """"Conv2D_2:1.0,Conv2D_3:2.0" (weight optional, default 1) -> weighted layer objectives."""
    parts = []
    for item in check_text(text or "", "layer mix").split(","):
        item = item.strip()
        if not item:
            raise UserError(f"layer mix {text!r} has an empty entry; expected e.g. 'Conv2D_2:1.0,Conv2D_3:2.0'")
        name, _, weight = item.partition(":")
        if not name.strip():
            raise UserError(f"layer mix entry {item!r} has no layer name; expected LAYER[:WEIGHT]")
        parts.append((layer(name.strip()), _parse_number(weight, f"weight of {name.strip()!r}") if weight else 1.0))
    return weighted(parts)


def parse_map(text: str) -> Objective:
    """"Conv2D_3:56" -> channel; "Conv2D_3:56,12" -> sum of the channels 56 and 12."""
    name, sep, maps = check_text(text or "", "map text").partition(":")
    if not sep or not name.strip() or not maps.strip():
        raise UserError(f"map {text!r} must look like LAYER:MAP[,MAP...], e.g. 'Conv2D_3:56'")
    numbers = [_parse_int(m, "map number") for m in maps.split(",")]
    return sum((channel(name.strip(), m) for m in numbers), start=0)


def objective_from_text(maps: Sequence[str] = (), layer: str | None = None, layers: str | None = None,
                        default_map: str = "Conv2D_3:56") -> Objective:
    """The CLI's objective options -> one Objective: maps are summed; exactly one kind may be given."""
    given = sum(bool(x) for x in (list(maps), layer, layers))
    if given > 1:
        raise UserError("give one objective: --map (repeatable), --layer or --layers, not several kinds")
    if layer:
        return O.layer(layer)
    if layers:
        return parse_layer_mix(layers)
    return sum((parse_map(text) for text in (list(maps) or [default_map])), start=0)


def parse_digits(text: str | Sequence[int], num_classes: int = 10) -> tuple[int, int]:
    """'4,9' -> (4, 9); UserError unless two different digits in 0..num_classes-1."""
    parts = [p.strip() for p in check_text(text, "digits").split(",")] if isinstance(text, str) else [str(p) for p in text]
    if len(parts) != 2:
        raise UserError(f"digits must be two digits like 4,9; got {text!r}")
    digits = []
    for part in parts:
        digit = whole_text(part)
        if digit is None or not 0 <= digit < num_classes:
            raise UserError(f"digit {part!r} is not in 0..{num_classes - 1}")
        digits.append(digit)
    if digits[0] == digits[1]:
        raise UserError(f"digits must be two different digits; got {digits[0]} twice")
    return digits[0], digits[1]


def parse_normalization(text: str) -> Normalization:
    """`none`, `global` (MNIST's mean and std), `per_image`, `per_pixel` (the pixel statistics come
    separately), or `MEAN,STD` on the [0, 1] pixel scale."""
    value = text.strip().lower().replace("-", "_")
    if value in ("none", "per_image", "per_pixel"):
        return Normalization(value)
    if value == "global":
        return default_spec().normalization
    parts = value.split(",")
    if len(parts) == 2:
        try:
            mean, std = float(parts[0]), float(parts[1])
        except ValueError:
            pass
        else:
            if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
                raise UserError(f"--normalize MEAN,STD needs a finite mean and a std > 0, got {text!r}")
            return Normalization("global", mean, std)
    raise UserError(f"unknown normalisation {text!r}; allowed: {', '.join(NORMALIZE_CHOICES)}")


def parse_node(text: str, layer: str, model):
    """'120' -> the centre of map 120; '120:1,1' -> pixel (1, 1) of map 120 (dense layers: unit 120)."""
    map_text, _, where = check_text(text, "node").partition(":")
    unit = whole("node map", number(map_text, "node map"))
    if not where:
        return O.node(layer, unit)
    y_text, comma, x_text = where.partition(",")
    if not comma:
        raise UserError(f"node {text!r} must look like MAP:Y,X (e.g. 120:1,1) or MAP")
    return O.node(layer, unit, whole("node y", number(y_text, "node y")), whole("node x", number(x_text, "node x")))


def parse_layers(model, text: str | None) -> list[str]:
    """'Conv2D_1,Dense_1' -> those layers; 'all' -> every layer but Flatten and Dropout; None -> the first."""

    if text is None:
        return model.layer_names[:1]
    if text.strip().lower() == "all":
        return viewable_layers(model)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError(f"no layer given; valid layers: {', '.join(model.layer_names)}")
    return [model.check_layer(name) for name in names]


def parse_methods(text: str) -> list[str]:

    if check_text(text, "method list").strip().lower() == "all":
        return list(METHODS)
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError(f"no method given; allowed: {', '.join(METHODS)}, all")
    for name in names:
        check_choice("attribution method", name, METHODS)
    return list(dict.fromkeys(names))


# ---- network layouts (article III's li_Conv, li_Pool, li_MLP) -------------------------------

# the articles' build_cnn_simple codes its activations as indices into these lists
ARTICLE_CONV_CODES = ("relu", "sigmoid", "elu", "tanh")
ARTICLE_HIDDEN_CODES = ("relu", "sigmoid", "tanh")
ARTICLE_OUTPUT_CODES = ("softmax", "sigmoid")
LAYOUT_KEYS = ("conv", "pools", "dense")


def _parse_size(text: str, what: str, parameter: str) -> tuple[int, int]:
    """'3' -> (3, 3); '3x5' -> (3, 5)."""
    parts = text.strip().lower().split("x")
    values = [whole_text(part) for part in parts]
    if len(parts) > 2 or None in values:
        raise UserError(f"{what} {text.strip()!r} must be a whole number or HxW, e.g. 3 or 3x3", parameter)
    return (values[0], values[-1])


def _layout_entries(text: str, what: str, parameter: str, example: str) -> list[list[str]]:
    items = [item.strip() for item in check_text(text or "", what).split(",")]
    if not any(items) or not all(items):
        raise UserError(f"{what} {text!r} has an empty entry; expected e.g. {example!r}", parameter)
    return [item.split(":") for item in items]


def parse_conv_layers(text: str) -> tuple[tuple[int, tuple[int, int], str], ...]:
    """'32:3:relu,64:3x3:tanh' -> ((32, (3, 3), 'relu'), (64, (3, 3), 'tanh')): FILTERS:KERNEL[:ACTIVATION]
    per conv layer (activation default relu), as article III's li_Conv."""
    layers = []
    for parts in _layout_entries(text, "conv layers", "conv", "32:3:relu,64:3:relu"):
        if len(parts) not in (2, 3):
            raise UserError(f"conv layer {':'.join(parts)!r} must look like FILTERS:KERNEL[:ACTIVATION], e.g. 32:3:relu",
                            "conv")
        filters = _parse_int(parts[0], "number of filters")
        kernel = _parse_size(parts[1], "kernel", "conv")
        layers.append((filters, kernel, parts[2].strip().lower() if len(parts) == 3 else "relu"))
    return tuple(layers)


def parse_pools(text: str) -> tuple[tuple[int, int], ...]:
    """'2,2' or '2x2,3' -> pool sizes after the first conv layers; 'none' -> no pools."""
    if (text or "").strip().lower() == "none":
        return ()
    return tuple(_parse_size(parts[0], "pool size", "pools") if len(parts) == 1 else _bad_pool(parts)
                 for parts in _layout_entries(text, "pools", "pools", "2,2"))


def _bad_pool(parts: list[str]):
    raise UserError(f"pool {':'.join(parts)!r} must be a size like 2 or 2x2 (or 'none' for no pools)", "pools")


def parse_dense_layers(text: str) -> tuple[tuple[int, str], ...]:
    """'100:relu,10:softmax' -> ((100, 'relu'), (10, 'softmax')): UNITS[:ACTIVATION] per dense
    layer, as article III's li_MLP (activation default relu, the last layer's softmax)."""
    entries = _layout_entries(text, "dense layers", "dense", "100:relu,10:softmax")
    layers = []
    for index, parts in enumerate(entries):
        if len(parts) not in (1, 2):
            raise UserError(f"dense layer {':'.join(parts)!r} must look like UNITS[:ACTIVATION], e.g. 100:relu", "dense")
        default = "softmax" if index == len(entries) - 1 else "relu"
        layers.append((_parse_int(parts[0], "number of units"), parts[1].strip().lower() if len(parts) == 2 else default))
    return tuple(layers)


def read_layout_file(path: str) -> dict:
    """A JSON layout file -> {'conv': ..., 'pools': ..., 'dense': ...} for TrainSettings (keys left
    out keep their defaults).

    The file holds article III's lists: `{"conv": [[32, [3, 3], "relu"], ...], "pools": [[2, 2],
    [2, 2]], "dense": [[100, "relu"], [10, "softmax"]]}`; a kernel or pool may be one number,
    an activation may be the articles' index (conv 0 relu, 1 sigmoid, 2 elu, 3 tanh; hidden
    dense 0 relu, 1 sigmoid, 2 tanh; output 0 softmax, 1 sigmoid), and a pool may be wrapped
    in a list as in `li_Pool = [[(2,2)], [(2,2)]]`.
    """
    import json
    from pathlib import Path

    file = Path(path).expanduser()
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise UserError(f"layout file {path} does not exist", "spec") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"layout file {path} is not readable JSON: {exc}", "spec") from None
    if not isinstance(data, dict):
        raise UserError(f"layout file {path} must hold a JSON object with the keys {', '.join(LAYOUT_KEYS)}", "spec")
    unknown = sorted(set(data) - set(LAYOUT_KEYS))
    if unknown:
        raise UserError(f"layout file {path} has unknown keys {', '.join(unknown)}; allowed: {', '.join(LAYOUT_KEYS)}",
                        "spec")
    try:
        layout = {key: _LAYOUT_READERS[key](data[key]) for key in LAYOUT_KEYS if key in data}
    except UserError as exc:
        raise UserError(f"layout file {path}: {exc}", "spec") from None
    return layout


def _json_list(value, what: str) -> list:
    if not isinstance(value, list):
        raise UserError(f"{what} must be a list, got {value!r}")
    return value


def _json_size(value, what: str) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # li_Pool's [(2, 2)]
    pair = [value, value] if isinstance(value, int) else value
    if (not isinstance(pair, list) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
        raise UserError(f"{what} must be a whole number or [height, width], got {json_text(value)}")
    return (pair[0], pair[1])


def _json_activation(value, codes: tuple[str, ...], what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(codes):
            raise UserError(f"activation code {value} of {what} is not one of the articles' "
                            f"({', '.join(f'{i} {name}' for i, name in enumerate(codes))})")
        return codes[value]
    if not isinstance(value, str):
        raise UserError(f"activation of {what} must be a name or the articles' index, got {json_text(value)}")
    return value.lower()


def _json_conv(value) -> tuple:
    layers = []
    for index, entry in enumerate(_json_list(value, "conv")):
        what = f"conv layer {index + 1}"
        if not isinstance(entry, list) or len(entry) not in (2, 3):
            raise UserError(f"{what} must be [filters, kernel, activation], got {json_text(entry)}")
        activation = _json_activation(entry[2], ARTICLE_CONV_CODES, what) if len(entry) == 3 else "relu"
        layers.append((entry[0], _json_size(entry[1], f"kernel of {what}"), activation))
    return tuple(layers)


def _json_pools(value) -> tuple:
    return tuple(_json_size(entry, f"pool {index + 1}") for index, entry in enumerate(_json_list(value, "pools")))


def _json_dense(value) -> tuple:
    entries = _json_list(value, "dense")
    layers = []
    for index, entry in enumerate(entries):
        what, last = f"dense layer {index + 1}", index == len(entries) - 1
        if not isinstance(entry, list) or len(entry) not in (1, 2):
            raise UserError(f"{what} must be [units, activation], got {json_text(entry)}")
        codes = ARTICLE_OUTPUT_CODES if last else ARTICLE_HIDDEN_CODES
        activation = _json_activation(entry[1], codes, what) if len(entry) == 2 else codes[0]
        layers.append((entry[0], activation))
    return tuple(layers)


_LAYOUT_READERS = {"conv": _json_conv, "pools": _json_pools, "dense": _json_dense}


def json_text(value) -> str:
    import json

    return json.dumps(value)


# ---- sweep grids -----------------------------------------------------------------------------
def parse_grid(entries: Sequence[str] = (), path: str | None = None) -> dict[str, list]:
    """A sweep grid from `--grid NAME=V1,V2` texts and/or a JSON file {"name": [values]}.

    Names are `TrainSettings` fields (dashes allowed: batch-size); text values are converted to
    the field's type ("none" for an optional one). Layout fields (conv, pools, dense) need the
    JSON file.
    """
    import json
    from pathlib import Path

    grid: dict[str, list] = {}
    if path is not None:
        try:
            loaded = json.loads(Path(path).expanduser().read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"grid file {path} is not readable JSON: {exc}", "grid file") from None
        if not isinstance(loaded, dict):
            raise UserError(f'grid file {path} must hold an object like {{"seed": [0, 1]}}', "grid file")
        grid.update({str(k).replace("-", "_"): v if isinstance(v, list) else [v] for k, v in loaded.items()})
    for text in entries:
        name, sep, values = check_text(text, "grid entry").partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not values.strip():
            raise UserError(f"grid entry must look like seed=0,1,2, got {text!r}", "grid")
        grid[name] = [_grid_value(name, value.strip()) for value in values.split(",")]
    if not grid:
        raise UserError("no grid given; e.g. --grid seed=0,1 or --grid-file grid.json", "grid")
    return grid


def _grid_value(name: str, text: str):
    """`text` as the type of the TrainSettings field `name` (unknown names are left as text)."""
    from dataclasses import fields

    from cnnscope.training.settings import TrainSettings

    kinds = {f.name: str(f.type) for f in fields(TrainSettings)}
    kind = kinds.get(name)
    if kind is None:
        return text
    if "None" in kind and text.lower() == "none":
        return None
    if kind.startswith("tuple"):
        raise UserError(f"grid option {name!r} takes layout lists; give it in a --grid-file", "grid")
    if kind.startswith("bool"):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise UserError(f"grid option {name!r} takes true or false, got {text!r}", "grid")
        return text.lower() in ("true", "1", "yes")
    if kind.startswith("int"):
        return _parse_int(text, f"grid option {name!r}")
    if kind.startswith("float"):
        return _parse_number(text, f"grid option {name!r}")
    return text
