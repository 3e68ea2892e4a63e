"""Import a sequential CNN from an ONNX file with the `onnx` package only (no onnxruntime, no code run).

The graph must be a chain from one 1-channel square image input to one output, made of
Conv, Relu/Sigmoid/Tanh/Elu, MaxPool, Flatten/Reshape, Gemm or MatMul+Add, Softmax (last)
and Dropout, optionally starting with Sub and Div by constants (the input standardisation
that `torch.onnx.export` writes for a cnnscope model; it becomes the model's normalisation).
Layers get the seed's names (Conv2D_1, Max_Pool_1, Flatten, Dense_1, Dropout_1, ...); the
ONNX node behind each layer is recorded in the returned info.

ONNX, like PyTorch and cnnscope, is channels first and flattens in (c, h, w) order, so
weights are copied as they are (Gemm's B transposed unless transB, MatMul's B transposed).
An activation after a MaxPool is moved before it onto the conv: max pooling commutes with
every supported activation, as they are all increasing.

This module maps the ONNX operators onto cnnscope layers and builds the model. Reading and
checking the file (bounded reading, tensors, the input, the walk along the chain, attributes
and padding) lives in `nn.onnx_graph`; `OnnxGraph`, `read_onnx_file` and the limits
(`MAX_FILE_BYTES`, `MAX_TENSOR_ELEMENTS`, ...) are importable from here.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace

import numpy as np
import torch

from cnnscope.errors import UserError
from cnnscope.nn.model import CNN
from cnnscope.nn.onnx_graph import (  # reading and checking the file, also importable from here
    MAX_FILE_BYTES as MAX_FILE_BYTES,
    MAX_IMAGE_SIZE as MAX_IMAGE_SIZE,
    MAX_TENSOR_ELEMENTS as MAX_TENSOR_ELEMENTS,
    MIN_OPSET as MIN_OPSET,
    SUPPORTED_OPERATORS as SUPPORTED_OPERATORS,
    SUPPORTED_TEXT as SUPPORTED_TEXT,
    OnnxGraph as OnnxGraph,
    node_attributes,
    node_chain,
    node_pads,
    read_onnx_file as read_onnx_file,
)
from cnnscope.nn.spec import DENSE_ACTIVATIONS, LayerSpec, ModelSpec, Normalization

ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu"}
PASSIVE_KINDS = ("pool", "dropout", "flatten")  # an activation after these may move before them


# ---- mapping operators onto layers ---------------------------------------------------------
class _LayerBuilder:
    """Turns the chain's nodes into LayerSpecs and torch-layout weights, tracking the tensor's shape."""

    def __init__(self, graph: OnnxGraph):
        self.graph = graph
        self.path = graph.path
        self.layers: list[LayerSpec] = []
        self.weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.sources: dict[str, str] = {}
        self.shape: tuple[int, ...] = (1, graph.image_size, graph.image_size)
        self.mean: float | None = None
        self.std: float | None = None
        self.ends_in_softmax = False
        self.counts: dict[str, int] = {}

    def add_layer(self, layer: LayerSpec, node) -> None:
        self.layers.append(layer)
        self.sources[layer.name] = node.name or node.op_type

    def name(self, prefix: str) -> str:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}_{self.counts[prefix]}"

    def constant(self, node, index: int, what: str) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        value = self.graph.constants.get(node.input[index])
        if value is None:
            raise UserError(f"{self.path}: the {what} of node {node.name!r} ({node.op_type}) is computed; "
                            "it must be a constant")
        return value

    def what(self, node) -> str:
        return f"{self.path}: node {node.name!r} ({node.op_type})"

    def refuse(self, node, problem: str):
        raise UserError(f"{self.what(node)} {problem}")

    def spatial(self, node) -> tuple[int, int, int]:
        if len(self.shape) != 3:
            self.refuse(node, "comes after the Flatten; cnnscope supports it only on image-shaped tensors")
        return self.shape  # type: ignore[return-value]

    def flat(self, node) -> int:
        if len(self.shape) != 1:
            self.refuse(node, "comes before any Flatten/Reshape; cnnscope supports dense layers only after one")
        return self.shape[0]

    # ---- one method per operator -------------------------------------------------------
    def standardise(self, node) -> None:
        """Sub / Div by one constant before any layer: the input standardisation (x - mean) / std."""
        if self.layers or node.input[0] not in self.data_inputs(node):
            self.refuse(node, "is supported only as input standardisation: (image - constant) / constant "
                              "before the first layer")
        value = self.constant(node, 1, "second input")
        if value is None or value.size != 1 or not np.isfinite(value).all():
            self.refuse(node, "must subtract or divide by a single finite constant")
        number = float(str(np.float32(value.reshape(-1)[0])))  # the float32's shortest decimal form
        if node.op_type == "Sub" and self.mean is None and self.std is None:
            self.mean = number
        elif node.op_type == "Div" and self.std is None and number > 0:
            self.std = number
        else:
            self.refuse(node, "is supported only as (image - mean) / std with std > 0, each step at most once")

    def data_inputs(self, node) -> list[str]:
        return [name for name in node.input if name and name not in self.graph.constants]

    def conv(self, node) -> None:
        channels, height, width = self.spatial(node)
        weight, bias = self.constant(node, 1, "weight"), self.constant(node, 2, "bias")
        attributes = node_attributes(node)
        for key in ("strides", "dilations"):
            if any(v != 1 for v in attributes.get(key, [1, 1])):
                self.refuse(node, f"has {key} {list(attributes[key])}; only 1 is supported")
        if attributes.get("group", 1) != 1:
            self.refuse(node, f"has group {attributes['group']}; only 1 is supported")
        if weight is None or weight.ndim != 4 or weight.shape[1] != channels:
            self.refuse(node, f"has weights of shape {None if weight is None else list(weight.shape)}; "
                              f"expected filters x {channels} x kernel height x kernel width")
        filters, kernel = weight.shape[0], tuple(int(k) for k in weight.shape[2:])
        if list(attributes.get("kernel_shape", kernel)) != list(kernel):
            self.refuse(node, f"has kernel_shape {list(attributes['kernel_shape'])} but weights for {list(kernel)}")
        begins, ends = node_pads(attributes, kernel, (1, 1), (height, width), self.what(node))
        same = tuple((k - 1) // 2 for k in kernel), tuple(k - 1 - (k - 1) // 2 for k in kernel)
        if (begins, ends) == ((0, 0), (0, 0)):
            padding, height, width = "valid", height - kernel[0] + 1, width - kernel[1] + 1
        elif (begins, ends) == same:
            padding = "same"
        else:
            self.refuse(node, f"has pads {list(begins)} before and {list(ends)} after; supported: none (valid) "
                              f"or {list(same[0])} before and {list(same[1])} after (same)")
        if bias is not None and bias.shape != (filters,):
            self.refuse(node, f"has a bias of shape {list(bias.shape)}; expected [{filters}]")
        if min(height, width) < 1:
            self.refuse(node, "leaves no pixels")
        layer = LayerSpec("conv", self.name("Conv2D"), int(filters), kernel, padding=padding)
        self.weights[layer.name] = (weight, np.zeros(filters, np.float32) if bias is None else bias)
        self.add_layer(layer, node)
        self.shape = (int(filters), height, width)

    def max_pool(self, node) -> None:
        channels, height, width = self.spatial(node)
        attributes = node_attributes(node)
        kernel = tuple(int(k) for k in attributes.get("kernel_shape", ()))
        strides = tuple(int(s) for s in attributes.get("strides", (1, 1)))
        if len(kernel) != 2 or strides != kernel:
            self.refuse(node, f"has kernel_shape {list(kernel)} and strides {list(strides)}; only 2-d pooling with "
                              "strides equal to the kernel is supported")
        if any(v != 1 for v in attributes.get("dilations", [1, 1])):
            self.refuse(node, f"has dilations {list(attributes['dilations'])}; only 1 is supported")
        begins, ends = node_pads(attributes, kernel, strides, (height, width), self.what(node))
        if attributes.get("ceil_mode", 0):
            if (begins, ends) != ((0, 0), (0, 0)):
                self.refuse(node, "has ceil_mode with pads; only one of them is supported")
            ends = tuple(-(-size // k) * k - size for size, k in zip((height, width), kernel, strict=True))
        totals = tuple(-(-size // k) * k - size for size, k in zip((height, width), kernel, strict=True))
        same = tuple(t // 2 for t in totals), tuple(t - t // 2 for t in totals)
        if (begins, ends) == ((0, 0), (0, 0)):
            padding, height, width = "valid", height // kernel[0], width // kernel[1]
        elif (begins, ends) == same:
            padding, height, width = "same", -(-height // kernel[0]), -(-width // kernel[1])
        else:
            self.refuse(node, f"has pads {list(begins)} before and {list(ends)} after; supported: none (valid) "
                              f"or {list(same[0])} before and {list(same[1])} after (same)")
        if min(height, width) < 1:
            self.refuse(node, "leaves no pixels")
        self.add_layer(LayerSpec("pool", self.name("Max_Pool"), kernel=kernel, padding=padding), node)
        self.shape = (channels, height, width)

    def activation(self, node) -> None:
        """The activation goes onto the last conv or dense layer (across pools, dropout, Flatten)."""
        activation = ACTIVATIONS[node.op_type]
        if activation == "elu" and not math.isclose(node_attributes(node).get("alpha", 1.0), 1.0, rel_tol=1e-6):
            self.refuse(node, f"has alpha {node_attributes(node)['alpha']}; only alpha 1 is supported")
        index = len(self.layers) - 1
        while index >= 0 and self.layers[index].kind in PASSIVE_KINDS:
            index -= 1
        if index < 0 or self.layers[index].activation != "linear":
            self.refuse(node, "does not follow a Conv or dense layer without an activation; cnnscope supports one "
                              "activation per layer")
        layer = self.layers[index]
        if layer.kind == "dense" and activation not in DENSE_ACTIVATIONS:
            self.refuse(node, f"follows a dense layer; supported there: {', '.join(ACTIVATIONS[k] for k in ACTIVATIONS if ACTIVATIONS[k] in DENSE_ACTIVATIONS)}")
        self.layers[index] = replace(layer, activation=activation)

    def flatten(self, node) -> None:
        axis = node_attributes(node).get("axis", 1)
        if axis != 1:
            self.refuse(node, f"has axis {axis}; only axis 1 (keep the batch) is supported")
        self.flatten_to_features(node)

    def reshape(self, node) -> None:
        target = self.constant(node, 1, "shape")
        features = math.prod(self.shape)
        batch = (0, -1) + ((self.graph.batch,) if self.graph.batch else ())
        keep = (0,) + ((self.graph.batch,) if self.graph.batch else ())
        shape = [int(v) for v in target.reshape(-1)] if target is not None else []
        if len(shape) != 2 or not ((shape[0] in batch and shape[1] == features) or (shape[0] in keep and shape[1] == -1)):
            self.refuse(node, f"reshapes to {shape}; only flattening each image to {features} values is supported")
        self.flatten_to_features(node)

    def flatten_to_features(self, node) -> None:
        if len(self.shape) == 1:
            return  # already flat: nothing to do
        self.add_layer(LayerSpec("flatten", "Flatten"), node)
        self.shape = (math.prod(self.shape),)

    def gemm(self, node) -> None:
        features = self.flat(node)
        attributes = node_attributes(node)
        weight, bias = self.constant(node, 1, "B input"), self.constant(node, 2, "C input")
        if node.input[0] not in self.data_inputs(node) or attributes.get("transA", 0):
            self.refuse(node, "must multiply the layer input (A, not transposed) by constant weights (B)")
        if weight is None or weight.ndim != 2:
            self.refuse(node, "needs a 2-d constant B")
        weight = weight if attributes.get("transB", 0) else weight.T
        weight = weight * np.float32(attributes.get("alpha", 1.0))
        if bias is not None:
            bias = bias * np.float32(attributes.get("beta", 1.0))
        self.dense(node, weight, bias, features)

    def mat_mul(self, node, add) -> None:
        features = self.flat(node)
        weight = self.constant(node, 1, "second input")
        if node.input[0] not in self.data_inputs(node) or weight is None or weight.ndim != 2:
            self.refuse(node, "must multiply the layer input by a 2-d constant matrix")
        bias = None
        if add is not None:
            index = 1 if add.input[0] == node.output[0] else 0
            bias = self.constant(add, index, "bias")
        self.dense(node, weight.T, bias, features)

    def dense(self, node, weight: np.ndarray, bias: np.ndarray | None, features: int) -> None:
        units = weight.shape[0]
        if weight.shape[1] != features:
            self.refuse(node, f"has weights for {weight.shape[1]} inputs; the layer before gives {features}")
        if bias is not None:
            if bias.size not in (1, units) or bias.squeeze().ndim > 1:
                self.refuse(node, f"has a bias of shape {list(bias.shape)}; expected [{units}]")
            bias = np.broadcast_to(bias.reshape(-1), (units,))
        layer = LayerSpec("dense", self.name("Dense"), int(units))
        self.weights[layer.name] = (weight, np.zeros(units, np.float32) if bias is None else bias)
        self.add_layer(layer, node)
        self.shape = (int(units),)

    def dropout(self, node) -> None:
        ratio = self.constant(node, 1, "ratio")
        training = self.constant(node, 2, "training_mode")
        if training is not None and bool(training.reshape(-1)[0]):
            self.refuse(node, "is in training mode (random at inference); export the model in eval mode")
        rate = float(ratio.reshape(-1)[0]) if ratio is not None else float(node_attributes(node).get("ratio", 0.5))
        if not 0 <= rate < 1:
            self.refuse(node, f"has ratio {rate}; it must be in [0, 1)")
        self.add_layer(LayerSpec("dropout", self.name("Dropout"), rate=rate), node)

    def softmax(self, node) -> None:
        axis = node_attributes(node).get("axis", -1)
        if node.output[0] != self.graph.output_name or axis not in (-1, 1) or len(self.shape) != 1:
            self.refuse(node, "is supported only as the last operation, over the classes")
        self.activation_softmax(node)

    def activation_softmax(self, node) -> None:
        index = len(self.layers) - 1
        while index >= 0 and self.layers[index].kind == "dropout":
            index -= 1
        if index < 0 or self.layers[index].kind != "dense" or self.layers[index].activation != "linear":
            self.refuse(node, "must follow a dense layer without an activation")
        self.layers[index] = replace(self.layers[index], activation="softmax")
        self.ends_in_softmax = True


# ---- converting to a cnnscope model --------------------------------------------------------
def import_onnx(path: str | os.PathLike, normalization: Normalization | None = None) -> tuple[CNN, dict]:
    """A cnnscope model with the ONNX graph's layers and weights, in eval mode.

    Args:
        path: the `.onnx` file (for example written by `torch.onnx.export`).
        normalization: how raw [0, 1] images were standardised before the graph saw them
            (default: not at all). A graph that starts with Sub/Div by constants carries its
            own standardisation, which becomes the model's; then this must be None or "none".

    Returns:
        (model, info): `info` describes the file (format, opset, producer), says what the
        graph's output is (`"outputs"`: "probabilities" if it ends in Softmax, which
        `model.probabilities` gives, else "last layer", which `model(images)` gives) and names
        the ONNX node behind each layer (`"layers"`).
    """
    graph = read_onnx_file(path)
    spec, weights, builder = onnx_spec(graph, normalization or Normalization("none"))
    model = CNN(spec)
    for name, (weight, bias) in weights.items():
        module = getattr(model.body, name)
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise UserError(f"{graph.path}: the weights of {builder.sources[name]!r} hold NaN or infinite values")
        if tuple(module.weight.shape) != weight.shape or tuple(module.bias.shape) != bias.shape:
            raise UserError(f"{graph.path}: the weights of {builder.sources[name]!r} have shape {list(weight.shape)}, "
                            f"layer {name} needs {list(module.weight.shape)}")
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.array(weight, dtype=np.float32)))
            module.bias.copy_(torch.from_numpy(np.array(bias, dtype=np.float32)))
    model.eval()
    info = {**graph.info, "input": graph.input_name, "output": graph.output_name,
            "outputs": "probabilities" if builder.ends_in_softmax else "last layer", "layers": builder.sources}
    return model, info


def onnx_spec(graph: OnnxGraph, normalization: Normalization) -> tuple[ModelSpec, dict, _LayerBuilder]:
    """The ModelSpec and torch-layout weights of the graph's chain; a UserError naming what cannot be run."""
    builder = _LayerBuilder(graph)
    handlers = {"Conv": builder.conv, "MaxPool": builder.max_pool, "Flatten": builder.flatten,
                "Reshape": builder.reshape, "Gemm": builder.gemm, "Dropout": builder.dropout,
                "Softmax": builder.softmax, "Sub": builder.standardise, "Div": builder.standardise,
                **{op: builder.activation for op in ACTIVATIONS}}
    for node, folded in node_chain(graph):
        if node.op_type == "MatMul":
            builder.mat_mul(node, folded[0] if folded else None)
        elif node.op_type in handlers:
            handlers[node.op_type](node)
        else:  # Add without a MatMul before it
            builder.refuse(node, "is supported only as the bias right after a MatMul")
    layers = builder.layers
    last = next((layer for layer in reversed(layers) if layer.kind != "dropout"), None)
    if last is None or last.kind != "dense":
        raise UserError(f"{graph.path}: the graph must end with a dense layer (Gemm or MatMul, the class outputs), "
                        f"found {'no layers' if last is None else last.kind}")
    if builder.mean is not None or builder.std is not None:
        if normalization.mode != "none":
            raise UserError(f"{graph.path} standardises its input itself (Sub/Div at the start); import it "
                            "without a normalisation (none)", "normalize")
        normalization = Normalization("global", builder.mean or 0.0, builder.std or 1.0)
    spec = ModelSpec(tuple(layers), in_channels=1, image_size=graph.image_size, normalization=normalization)
    return spec, builder.weights, builder
