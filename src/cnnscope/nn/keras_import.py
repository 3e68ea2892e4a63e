"""Import a Keras Sequential CNN from a Keras 2 `.h5` or a Keras 3 `.keras` file, without TensorFlow.

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

Keras works channels last (N x H x W x C), cnnscope channels first, so conv kernels go from
H x W x in x out to out x in x H x W, dense kernels are transposed, and the rows of the first
dense kernel after Flatten are reordered from Keras's (h, w, c) flatten order to (c, h, w).
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
import torch

from cnnscope.errors import UserError
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import (
    CONV_ACTIVATIONS,
    DENSE_ACTIVATIONS,
    MAX_PARAMETERS,
    LayerSpec,
    ModelSpec,
    Normalization,
)

SUPPORTED_LAYERS = ("Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout")
MAX_CONFIG_BYTES = 16 * 2**20  # config.json / metadata.json of a .keras file, the model_config attribute
MAX_WEIGHTS_BYTES = 1 << 30  # model.weights.h5 inside a .keras file (1 GiB)
MAX_ARRAY_VALUES = MAX_PARAMETERS  # one weight array
FLOAT_KINDS = "f"  # weights are float16/32/64
NORMALIZE_CHOICES = ("none", "global", "per_image", "per_pixel", "MEAN,STD")


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
        raise UserError(f"{path} is not a readable Keras .h5 file: {_first_line(exc)}") from None
    except KeyError as exc:
        raise UserError(f"{path} is a damaged Keras .h5 file (missing {_first_line(exc)})") from None
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
        raise UserError(f"{path} is not a readable .keras file: {_first_line(exc)}") from None
    layers, model_name = _sequential_layers(config, path)
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as handle:
            weights = _keras_v3_weights(handle, layers, path)
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: model.weights.h5 inside is not readable: {_first_line(exc)}") from None
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


def _first_line(exc: BaseException) -> str:
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


# ---- converting to a cnnscope model --------------------------------------------------------
def import_keras(path: str | os.PathLike, normalization: Normalization | None = None,
                 pixel_statistics: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[CNN, dict]:
    """A cnnscope model with the Keras file's layers (names kept) and weights, in eval mode.

    Args:
        path: the `.h5` or `.keras` file.
        normalization: how raw [0, 1] images were standardised before Keras saw them
            (default: not at all).
        pixel_statistics: with the `per_pixel` normalisation, the (mean, std) tensors
            (C x H x W, [0, 1] scale) of the scaler the Keras model was trained behind, e.g.
            `per_pixel_statistics(images, fitted_on="raw")` for the articles' StandardScaler.

    Returns:
        (model, source): `source` describes the file (format, Keras version, model name).
    """
    normalization = normalization or Normalization("none")
    if (normalization.mode == "per_pixel") != (pixel_statistics is not None):
        raise UserError("the per_pixel normalisation needs pixel statistics (and only it takes them)", "normalize")
    keras_file = read_keras_file(path)
    spec = keras_spec(keras_file, normalization)
    model = CNN(spec)
    if pixel_statistics is not None:
        model.normalize.set_pixel_statistics(*pixel_statistics)
    _load_weights(model, keras_file)
    model.eval()
    return model, keras_file.describe()


def keras_spec(keras_file: KerasFile, normalization: Normalization) -> ModelSpec:
    """The cnnscope ModelSpec for the file's layers; a UserError naming any layer we cannot run."""
    path = keras_file.path
    layers = list(keras_file.layers)
    input_shape = None
    if layers[0]["class_name"] == "InputLayer":
        config = layers.pop(0)["config"]
        input_shape = config.get("batch_shape") or config.get("batch_input_shape")
    if not layers:
        raise UserError(f"{path} has a Sequential model without layers")
    first = layers[0]["config"]
    input_shape = input_shape or first.get("batch_input_shape") or first.get("batch_shape") \
        or (first.get("build_config") or {}).get("input_shape")
    in_channels, image_size = _input_size(input_shape, path)

    specs = [_checked_layer_spec(layer, path) for layer in layers]
    kinds = [spec.kind for spec in specs]
    last = next((spec for spec in reversed(specs) if spec.kind != "dropout"), specs[-1])
    if last.kind != "dense":
        raise UserError(f"{path}: the last layer must be Dense (the class outputs), found {last.name!r} "
                        f"({layers[specs.index(last)]['class_name']})")
    for spec, layer in zip(specs, layers, strict=True):
        if spec.activation == "softmax" and spec is not last:
            raise UserError(f"layer {spec.name!r} ({layer['class_name']}) has a softmax activation; cnnscope "
                            "supports softmax only in the last layer")
    if kinds.count("flatten") > 1:
        raise UserError(f"{path} has more than one Flatten layer; cnnscope supports exactly one")
    try:
        return ModelSpec(tuple(specs), in_channels=in_channels, image_size=image_size, normalization=normalization)
    except UserError as exc:
        raise UserError(f"{path}: {exc}", exc.parameter) from None


def _input_size(shape, path: Path) -> tuple[int, int]:
    if not isinstance(shape, list | tuple) or len(shape) != 4:
        raise UserError(f"{path}: cannot tell the input shape (expected batch x height x width x channels, "
                        f"found {shape!r})")
    _, height, width, channels = shape
    if not all(isinstance(v, int) and v > 0 for v in (height, width, channels)):
        raise UserError(f"{path}: the input shape {tuple(shape[1:])} must be fixed (no None); "
                        "give the model's first layer a full input_shape")
    if height != width:
        raise UserError(f"{path}: the input is {height}x{width}; cnnscope supports square images only")
    return channels, height


def _activation(config: dict) -> str:
    value = config.get("activation", "linear")
    if value is None:
        return "linear"
    if isinstance(value, dict):  # Keras 3 may serialise functions as {"class_name": "function", "config": "relu"}
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name", "?")
    return str(value).lower()


def _pair(value, default: int) -> tuple[int, int]:
    if value is None:
        return (default, default)
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)


def _checked_layer_spec(layer: dict, path: Path) -> LayerSpec:
    """`_layer_spec`, with a UserError naming the file and the layer for config values of the
    wrong type or beyond the limits of a spec."""
    try:
        return _layer_spec(layer, path)
    except UserError as exc:
        raise exc if str(path) in str(exc) else UserError(f"{path}: {exc}", exc.parameter) from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        name = layer["config"].get("name", "?") if isinstance(layer.get("config"), dict) else "?"
        raise UserError(f"{path}: layer {name!r} ({layer.get('class_name')}) has a malformed config: "
                        f"{type(exc).__name__} {_first_line(exc)}") from None


def _layer_spec(layer: dict, path: Path) -> LayerSpec:
    class_name, config = layer["class_name"], layer["config"]
    name = str(config.get("name", ""))
    what = f"layer {name!r} ({class_name})"
    if class_name not in SUPPORTED_LAYERS:
        raise UserError(f"{path}: {what} is not supported; supported layers: {', '.join(SUPPORTED_LAYERS)}")
    if not name or "." in name:
        raise UserError(f"{path}: {what} has a name cnnscope cannot use (empty or containing '.')")
    if config.get("data_format", "channels_last") not in ("channels_last", None):
        raise UserError(f"{path}: {what} uses data_format {config['data_format']!r}; only channels_last is supported")

    if class_name == "Conv2D":
        activation = _activation(config)
        if activation not in CONV_ACTIVATIONS:
            raise UserError(f"{path}: {what} has activation {activation!r}; supported for Conv2D: "
                            f"{', '.join(CONV_ACTIVATIONS)}")
        if _pair(config.get("strides"), 1) != (1, 1):
            raise UserError(f"{path}: {what} has strides {list(_pair(config.get('strides'), 1))}; "
                            "only strides 1 is supported")
        if _pair(config.get("dilation_rate"), 1) != (1, 1):
            raise UserError(f"{path}: {what} has dilation_rate {list(_pair(config.get('dilation_rate'), 1))}; "
                            "only dilation 1 is supported")
        if int(config.get("groups", 1)) != 1:
            raise UserError(f"{path}: {what} has groups {config['groups']}; only groups 1 is supported")
        padding = config.get("padding", "valid")
        if padding not in ("valid", "same"):
            raise UserError(f"{path}: {what} has padding {padding!r}; supported: valid, same")
        return LayerSpec("conv", name, int(config["filters"]), _pair(config["kernel_size"], 1), activation, padding)

    if class_name == "MaxPooling2D":
        pool = _pair(config.get("pool_size"), 2)
        strides = _pair(config.get("strides"), 0) if config.get("strides") is not None else pool
        if strides != pool:
            raise UserError(f"{path}: {what} has strides {list(strides)} different from its pool_size {list(pool)}; "
                            "only strides equal to pool_size are supported")
        padding = config.get("padding", "valid")
        if padding not in ("valid", "same"):
            raise UserError(f"{path}: {what} has padding {padding!r}; supported: valid, same")
        return LayerSpec("pool", name, kernel=pool, padding=padding)

    if class_name == "Flatten":
        return LayerSpec("flatten", name)

    if class_name == "Dropout":
        return LayerSpec("dropout", name, rate=float(config.get("rate", 0.0)))

    activation = _activation(config)  # Dense
    if activation not in DENSE_ACTIVATIONS:
        raise UserError(f"{path}: {what} has activation {activation!r}; supported for Dense: "
                        f"{', '.join(DENSE_ACTIVATIONS)}")
    return LayerSpec("dense", name, int(config["units"]), activation=activation)


def _load_weights(model: CNN, keras_file: KerasFile) -> None:
    """Copy the Keras arrays into the model's conv and dense layers, converting layouts."""
    path = keras_file.path
    previous_shape = None  # output shape (C, H, W) of the layer before Flatten
    after_flatten = False
    for spec in model.spec.layers:
        if spec.kind == "flatten":
            index = model.layer_names.index(spec.name)
            previous_shape = model.output_shape(model.layer_names[index - 1]) if index else \
                (model.spec.in_channels, model.spec.image_size, model.spec.image_size)
            after_flatten = True
            continue
        if spec.kind not in ("conv", "dense"):
            continue
        module = getattr(model.body, spec.name)
        arrays = keras_file.weights.get(spec.name, [])
        kernels = [a for a in arrays if a.ndim == module.weight.ndim]
        biases = [a for a in arrays if a.ndim == 1]
        if len(kernels) != 1 or len(biases) > 1 or len(kernels) + len(biases) != len(arrays):
            raise UserError(f"{path}: weights of layer {spec.name!r} are missing or unexpected "
                            f"(found shapes {[list(a.shape) for a in arrays]})")
        kernel = kernels[0]
        needed = tuple(module.weight.shape)
        needed = (needed[2], needed[3], needed[1], needed[0]) if spec.kind == "conv" else (needed[1], needed[0])
        if kernel.shape != needed or (biases and biases[0].shape != (needed[-1],)):
            found = [list(a.shape) for a in arrays]
            raise UserError(f"{path}: the weights of layer {spec.name!r} have shapes {found}, the layer's "
                            f"config needs kernel {list(needed)} and bias [{needed[-1]}]")
        if spec.kind == "conv":
            converted = kernel.transpose(3, 2, 0, 1)  # H W in out -> out in H W
        else:
            converted = kernel.T  # in out -> out in
            if after_flatten and previous_shape is not None and len(previous_shape) == 3:
                channels, height, width = previous_shape
                # Keras flattens (h, w, c); cnnscope flattens (c, h, w).
                converted = kernel.reshape(height, width, channels, -1).transpose(2, 0, 1, 3) \
                    .reshape(channels * height * width, -1).T
            after_flatten = False
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(converted)))
            if biases:
                module.bias.copy_(torch.from_numpy(biases[0]))
            else:  # use_bias=False
                module.bias.zero_()


# ---- options -------------------------------------------------------------------------------
