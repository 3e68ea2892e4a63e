"""Read a Keras Sequential model file for `nn.keras_import`: the layer configs and the weight arrays.

`read_keras_file` tells a Keras 2 `.h5` from a Keras 3 `.keras` file by its content (not its
suffix) and returns a `KerasFile`: the Sequential model's layer configs in order and each
layer's weight arrays, as Keras stored them (channels last).

A `.h5` file (Keras's legacy HDF5 format, what the articles' `cnn.save('cnn.h5')` wrote)
holds the model's JSON in the root attribute `model_config` and the weights in the group
`model_weights/<layer>`, listed by its `weight_names` attribute. A `.keras` file is a zip
with `config.json` and `model.weights.h5`, whose weights sit in
`layers/<generic name>/vars/<i>` (`conv2d`, `conv2d_1`, `dense`, ... in layer order; Keras 3
also stores the layer's own name as the `name` attribute of `vars`).

Nothing is read whole before its size is known: zip members are checked by their declared
size and read with a bound, HDF5 datasets by their shape and dtype; HDF5 external links,
external raw storage and virtual datasets are refused (a model file must not make cnnscope read
other local files), and every decoder error becomes a one-line UserError.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnscope.errors import UserError
from cnnscope.nn.spec import MAX_PARAMETERS

MAX_CONFIG_BYTES = 16 * 2**20  # config.json / metadata.json of a .keras file, the model_config attribute
MAX_WEIGHTS_BYTES = 1 << 30  # model.weights.h5 inside a .keras file (1 GiB)
MAX_ARRAY_VALUES = MAX_PARAMETERS  # one weight array
FLOAT_KINDS = "f"  # weights are float16/32/64


@dataclass
class KerasFile:
    """What a Keras model file holds: the Sequential layer configs and each layer's weight arrays."""

    path: Path
    file_format: str  # "keras-h5" or "keras-v3"
    keras_version: str
    model_name: str
    layers: list[dict]  # {"class_name": ..., "config": {...}} in order, InputLayer included
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)  # layer name -> arrays

    def describe(self) -> dict:
        return {"file": str(self.path), "format": self.file_format, "keras_version": self.keras_version,
                "model_name": self.model_name}


# ---- reading files -------------------------------------------------------------------------
def read_keras_file(path: str | os.PathLike) -> KerasFile:
    """Read a Keras `.h5` or `.keras` file (format detected from the content, not the suffix)."""
    import h5py

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder (a TensorFlow SavedModel?); save the model with "
                        "model.save('cnn.h5') or model.save('cnn.keras') and import that file")
    if not stat.S_ISREG(path.stat().st_mode):
        raise UserError(f"{path} is not a regular file (a FIFO or device?); import a Keras .h5 or .keras file")
    if zipfile.is_zipfile(path):
        return _read_keras_v3(path)
    if h5py.is_hdf5(str(path)):
        return _read_keras_h5(path)
    raise UserError(f"{path} is not a Keras model file (expected a Keras .h5 or .keras file)")


def _read_keras_h5(path: Path) -> KerasFile:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            if "model_config" not in attrs:
                if "layer_names" in attrs:
                    raise UserError(f"{path} holds only weights (written by save_weights); import a file "
                                    "written by model.save('cnn.h5'), which also holds the architecture")
                raise UserError(f"{path} is an HDF5 file but not a Keras model (no 'model_config' attribute)")
            config = _parse_json(_text(_attribute(handle, "model_config", path)), path)
            keras_version = _text(_attribute(handle, "keras_version", path)) if "keras_version" in attrs else "unknown"
            layers, model_name = _sequential_layers(config, path)
            group = _member(handle, "model_weights", path) if "model_weights" in handle else handle
            weights: dict[str, list[np.ndarray]] = {}
            for layer in layers:
                name = str(layer["config"].get("name", ""))
                if name and name in group:
                    layer_group = _member(group, name, path)
                    names = _attribute(layer_group, "weight_names", path) if "weight_names" in layer_group.attrs else []
                    weights[name] = [_read_array(layer_group, _text(n), path) for n in names]
    except OSError as exc:
        raise UserError(f"{path} is not a readable Keras .h5 file: {first_line(exc)}") from None
    except KeyError as exc:
        raise UserError(f"{path} is a damaged Keras .h5 file (missing {first_line(exc)})") from None
    return KerasFile(path, "keras-h5", keras_version, model_name, layers, weights)


def _read_keras_v3(path: Path) -> KerasFile:
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise UserError(f"{path} is a zip file but not a Keras .keras model "
                                "(expected config.json and model.weights.h5 inside)")
            config = _parse_json(_zip_member(archive, "config.json", MAX_CONFIG_BYTES, path).decode("utf-8", "replace"), path)
            metadata = _parse_json(_zip_member(archive, "metadata.json", MAX_CONFIG_BYTES, path).decode("utf-8", "replace"),
                                   path) if "metadata.json" in names else {}
            weights_bytes = _zip_member(archive, "model.weights.h5", MAX_WEIGHTS_BYTES, path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, NotImplementedError,
            RuntimeError, ValueError) as exc:
        raise UserError(f"{path} is not a readable .keras file: {first_line(exc)}") from None
    layers, model_name = _sequential_layers(config, path)
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as handle:
            weights = _keras_v3_weights(handle, layers, path)
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: model.weights.h5 inside is not readable: {first_line(exc)}") from None
    return KerasFile(path, "keras-v3", str(metadata.get("keras_version", "unknown")), model_name, layers, weights)


def _keras_v3_weights(handle, layers: list[dict], path: Path) -> dict[str, list[np.ndarray]]:
    """Weights of each layer from `layers/<generic name>/vars/<i>` of model.weights.h5."""
    groups = _member(handle, "layers", path) if "layers" in handle else {}
    by_name = {}
    vars_groups = {}
    for generic in groups:
        layer_group = _member(groups, generic, path)
        vars_group = _member(layer_group, "vars", path) if "vars" in layer_group else None
        vars_groups[generic] = vars_group
        if vars_group is not None and "name" in vars_group.attrs:  # Keras 3 records the layer name
            by_name[_text(_attribute(vars_group, "name", path))] = vars_group
    counts: dict[str, int] = {}
    weights: dict[str, list[np.ndarray]] = {}
    for layer in layers:
        if layer["class_name"] == "InputLayer":
            continue
        name = layer["config"].get("name", "")
        snake = _snake_case(layer["class_name"])
        generic = snake if counts.get(snake, 0) == 0 else f"{snake}_{counts[snake]}"
        counts[snake] = counts.get(snake, 0) + 1
        vars_group = by_name.get(name)
        if vars_group is None:
            vars_group = vars_groups.get(generic)
        if vars_group is None:
            continue
        keys = sorted(vars_group.keys(), key=lambda k: int(k) if k.isdigit() else 1 << 30)
        weights[name] = [_read_array(vars_group, k, path) for k in keys]
    return weights


def _zip_member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """A zip member's bytes: its declared size must be within `limit`, and no more is read."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise UserError(f"{path}: {name} inside declares {info.file_size:,} bytes; at most {limit:,} are read")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{path}: {name} inside holds more than {limit:,} bytes")
    return data


def _member(group, name: str, path: Path):
    """`group[name]` for a name that may be a path (`conv2d/kernel:0`), refusing external links at
    every step: a Keras file must not make cnnscope open another file."""
    import h5py

    node = group
    for part in [p for p in name.split("/") if p]:
        link = node.get(part, getlink=True)
        if link is None:
            raise KeyError(f"{name!r}")
        if isinstance(link, h5py.ExternalLink):
            raise UserError(f"{path}: {name!r} is an external link to {link.filename}; links to other files "
                            "are refused")
        node = node[part]
    return node


def _attribute(node, name: str, path: Path):
    """An attribute's value (attributes are stored uncompressed, so reading one costs at most the
    file's size); text longer than MAX_CONFIG_BYTES is refused."""
    value = node.attrs[name]
    if isinstance(value, bytes | str) and len(value) > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: the attribute {name!r} holds {len(value):,} bytes; at most {MAX_CONFIG_BYTES:,} "
                        "are read")
    return value


def _read_array(group, name: str, path: Path) -> np.ndarray:
    """A weight array, once its dataset is known to be in this file, float and of a bounded size;
    its values must be finite."""
    import h5py

    dataset = _member(group, name, path)
    what = f"{path}: dataset {dataset.name!r}"
    if not isinstance(dataset, h5py.Dataset):
        raise UserError(f"{what} is not an array")
    if dataset.external or dataset.is_virtual:
        raise UserError(f"{what} keeps its values in other files (external storage); refused")
    if dataset.dtype.kind not in FLOAT_KINDS or dataset.shape is None:
        raise UserError(f"{what} has dtype {dataset.dtype}; weights must be floats")
    values = int(np.prod(dataset.shape, dtype=np.int64))
    if values > MAX_ARRAY_VALUES:
        raise UserError(f"{what} declares the shape {list(dataset.shape)}; at most {MAX_ARRAY_VALUES:,} values "
                        "per array are read")
    array = np.asarray(dataset[()], dtype=np.float32)
    if not np.isfinite(array).all():
        raise UserError(f"{what} holds NaN or infinite values")
    return array


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none), for a one-line UserError."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _snake_case(class_name: str) -> str:
    """Keras's generic object name for a class: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    import re

    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _parse_json(text: str, path: Path) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} has a malformed model config: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} has a malformed model config (not a JSON object)")
    return data


def _sequential_layers(config: dict, path: Path) -> tuple[list[dict], str]:
    class_name = config.get("class_name", "?")
    if class_name in ("Functional", "Model"):
        raise UserError(f"{path} holds a functional Keras model (class {class_name}); only Sequential models "
                        "can be imported")
    if class_name != "Sequential":
        raise UserError(f"{path} holds a Keras model of class {class_name!r}; only Sequential models can be imported")
    body = config.get("config", {})
    layers = body if isinstance(body, list) else body.get("layers")  # Keras <= 2.2 stored a bare list
    if not isinstance(layers, list) or not layers:
        raise UserError(f"{path} has a Sequential model without layers")
    model_name = body.get("name", "") if isinstance(body, dict) else ""
    if not all(isinstance(layer, dict) and isinstance(layer.get("config", {}), dict) for layer in layers):
        raise UserError(f"{path} has a malformed model config (a layer is not a JSON object with a config object)")
    return [{"class_name": layer.get("class_name", "?"), "config": layer.get("config", {})} for layer in layers], str(model_name)
