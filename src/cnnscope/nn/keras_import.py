"""Import a Keras Sequential CNN from a Keras 2 `.h5` or a Keras 3 `.keras` file, without TensorFlow.

Keras works channels last (N x H x W x C), cnnscope channels first, so conv kernels go from
H x W x in x out to out x in x H x W, dense kernels are transposed, and the rows of the first
dense kernel after Flatten are reordered from Keras's (h, w, c) flatten order to (c, h, w).

This module maps the Keras layers onto cnnscope layers, builds the model and converts the
weights. Reading the file (the `.h5` and `.keras` containers, size limits, the config JSON,
the weight arrays, refusing links to other files) lives in `nn.keras_files`; `KerasFile`,
`read_keras_file` and the limits (`MAX_CONFIG_BYTES`, `MAX_WEIGHTS_BYTES`, ...) are
importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cnnscope.errors import UserError
from cnnscope.nn.keras_files import (  # reading the file, also importable from here
    FLOAT_KINDS as FLOAT_KINDS,
    MAX_ARRAY_VALUES as MAX_ARRAY_VALUES,
    MAX_CONFIG_BYTES as MAX_CONFIG_BYTES,
    MAX_WEIGHTS_BYTES as MAX_WEIGHTS_BYTES,
    KerasFile as KerasFile,
    first_line,
    read_keras_file as read_keras_file,
)
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import (
    CONV_ACTIVATIONS,
    DENSE_ACTIVATIONS,
    LayerSpec,
    ModelSpec,
    Normalization,
)

SUPPORTED_LAYERS = ("Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout")
NORMALIZE_CHOICES = ("none", "global", "per_image", "per_pixel", "MEAN,STD")


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
                        f"{type(exc).__name__} {first_line(exc)}") from None


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
