"""Read and check an ONNX file for `nn.onnx_import`: the graph, its constants and its one chain of nodes.

`read_onnx_file` loads the file and checks its opset and its one 1-channel square image
input and one output; `node_chain` walks the nodes from the input to the output (folding
MatMul's Add into it) and refuses operators `nn.onnx_import` cannot map; `node_attributes`
and `node_pads` read a node's attributes and its spatial padding.

The file is read into memory only after its size is checked, external data (tensors stored
in other files) is refused, and every tensor's declared size is checked against its data
and a limit before an array is made.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnscope.errors import UserError

SUPPORTED_OPERATORS = ("Conv", "Relu", "Sigmoid", "Tanh", "Elu", "MaxPool", "Flatten", "Reshape",
                       "Gemm", "MatMul", "Add", "Softmax", "Dropout", "Sub", "Div", "Constant")
SUPPORTED_TEXT = ("Conv, Relu, Sigmoid, Tanh, Elu, MaxPool, Flatten, Reshape, Gemm, MatMul (+ Add as its bias), "
                  "Softmax (last), Dropout, Sub/Div by constants (input standardisation)")
MAX_FILE_BYTES = 512 * 2**20
MAX_TENSOR_ELEMENTS = 2**27
MAX_IMAGE_SIZE = 4096
MIN_OPSET = 9


@dataclass
class OnnxGraph:
    """What an ONNX file holds: its nodes in order, its constant tensors and its one input and output."""

    path: Path
    info: dict  # format, IR version, opset, producer, graph name
    input_name: str
    image_size: int
    batch: int | None  # the declared batch size, None if symbolic
    output_name: str
    nodes: list  # NodeProto, Constant nodes left out (their values are in `constants`)
    constants: dict[str, np.ndarray]


# ---- reading files -------------------------------------------------------------------------
def read_onnx_file(path: str | os.PathLike) -> OnnxGraph:
    """Read and check an ONNX file: one 1-channel square float input, one output, no external data.

    Args:
        path: the `.onnx` file.

    Returns:
        The graph's nodes, constants, input and output.
    """
    path = Path(path).expanduser()
    model = _load_model(path)
    graph = model.graph
    opset = max((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise UserError(f"{path} uses ONNX opset {opset}; opset {MIN_OPSET} or newer is supported "
                        "(export again with a newer opset_version)")
    if len(graph.sparse_initializer):
        raise UserError(f"{path} holds sparse tensors; only dense tensors are supported")
    constants = {tensor.name: _tensor_array(tensor, path) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            constants[node.output[0]] = _constant_value(node, path)
    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1:
        raise UserError(f"{path} has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
                        "only graphs with one image input can be imported")
    if len(graph.output) != 1:
        raise UserError(f"{path} has {len(graph.output)} outputs; only graphs with one output can be imported")
    image_size, batch = _input_size(inputs[0], path)
    producer = f"{model.producer_name} {model.producer_version}".strip()
    info = {"file": str(path), "format": "onnx", "ir_version": int(model.ir_version), "opset": int(opset),
            "producer": producer or "unknown", "graph_name": graph.name}
    nodes = [node for node in graph.node if not (node.op_type == "Constant" and node.domain in ("", "ai.onnx"))]
    return OnnxGraph(path, info, inputs[0].name, image_size, batch, graph.output[0].name, nodes, constants)


def _load_model(path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the .onnx file")
    if not path.is_file():
        raise UserError(f"{path} is not a regular file (a FIFO or device?); give the .onnx file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path} has {size:,} bytes; ONNX files up to {MAX_FILE_BYTES:,} bytes can be imported")
    try:
        # From bytes, so nothing next to the file (external data) is ever opened.
        model = onnx.load_model_from_string(path.read_bytes())
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable ONNX model ({first})") from None
    if not model.HasField("graph") or not len(model.graph.node) or not model.ir_version:
        raise UserError(f"{path} is not an ONNX model (no graph with nodes; damaged or another kind of file)")
    return model


def _tensor_array(tensor, path: Path) -> np.ndarray:
    """A tensor's values as an array, after checking where they are and how large they say they are."""
    from onnx import TensorProto, numpy_helper

    what = f"{path}: tensor {tensor.name!r}"
    if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
        raise UserError(f"{what} is stored in an external data file; only self-contained ONNX files "
                        "are imported (save with save_as_external_data=False)")
    if tensor.HasField("segment"):
        raise UserError(f"{what} is stored in segments; this is not supported")
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims) or math.prod(dims) > MAX_TENSOR_ELEMENTS:
        raise UserError(f"{what} declares the shape {dims}; at most {MAX_TENSOR_ELEMENTS} values per tensor "
                        "are supported")
    kinds = {TensorProto.FLOAT: ("float_data", 4), TensorProto.INT64: ("int64_data", 8)}
    if tensor.data_type not in kinds:
        name = TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in TensorProto.DataType.values() \
            else str(tensor.data_type)
        raise UserError(f"{what} has data type {name}; supported: FLOAT (weights), INT64 (shapes)")
    field_name, item_size = kinds[tensor.data_type]
    count = math.prod(dims)
    stored = len(tensor.raw_data) // item_size if tensor.raw_data else len(getattr(tensor, field_name))
    if stored != count or (tensor.raw_data and len(tensor.raw_data) != count * item_size):
        raise UserError(f"{what} declares {count} values for shape {dims} but holds {stored}; the file is damaged")
    return numpy_helper.to_array(tensor)


def _constant_value(node, path: Path) -> np.ndarray:
    attributes = {attribute.name: attribute for attribute in node.attribute}
    if "value" not in attributes:
        raise UserError(f"{path}: Constant node {node.name!r} has no tensor value "
                        f"(has {', '.join(attributes) or 'nothing'}); only tensor constants are supported")
    return _tensor_array(attributes["value"].t, path)


def _input_size(value, path: Path) -> tuple[int, int | None]:
    tensor_type = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if tensor_type.elem_type != 1:
        raise UserError(f"{path}: the input {value.name!r} is not float32; only float images are supported")
    if len(dims) != 4 or any(d is None or d <= 0 for d in dims[1:]):
        shown = ["?" if d is None else d for d in dims]
        raise UserError(f"{path}: the input {value.name!r} has shape {shown}; expected batch x 1 x height x width "
                        "with fixed height and width")
    _, channels, height, width = dims
    if channels != 1:
        raise UserError(f"{path}: the input has {channels} channels; only 1-channel (grayscale) images are supported")
    if height != width:
        raise UserError(f"{path}: the input is {height}x{width}; cnnscope supports square images only")
    if height > MAX_IMAGE_SIZE:
        raise UserError(f"{path}: the input is {height}x{width}; at most {MAX_IMAGE_SIZE}x{MAX_IMAGE_SIZE} is supported")
    return height, dims[0] or None


# ---- walking the chain ---------------------------------------------------------------------
def node_chain(graph: OnnxGraph) -> list[tuple[object, list[object]]]:
    """The nodes from the input to the output, each with the nodes folded into it (MatMul's Add)."""
    path = graph.path
    unsupported = sorted({node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
                          for node in graph.nodes} - set(SUPPORTED_OPERATORS))
    if unsupported:
        hint = ("; a shape computed at run time (x.view(x.size(0), -1) with a dynamic batch): use "
                "torch.flatten(x, 1) or export with a fixed batch size") if "Shape" in unsupported else ""
        raise UserError(f"{path}: unsupported ONNX operators: {', '.join(unsupported)}; supported: "
                        f"{SUPPORTED_TEXT}{hint}")
    consumers: dict[str, list] = {}
    for node in graph.nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chain, current = [], graph.input_name
    while current != graph.output_name:
        users = consumers.get(current, [])
        if len(users) != 1 or len(chain) > len(graph.nodes):
            raise UserError(f"{path}: tensor {current!r} feeds {len(users)} nodes; only a chain of layers from "
                            "the input to the output can be imported")
        node = users[0]
        data = [name for name in node.input if name and name not in graph.constants]
        if data != [current]:
            raise UserError(f"{path}: node {node.name!r} ({node.op_type}) takes the computed tensors {data}; "
                            "only one computed input per node is supported (other inputs must be constants)")
        for extra in node.output[1:]:
            if extra and (extra in consumers or extra == graph.output_name):
                raise UserError(f"{path}: the second output of node {node.name!r} ({node.op_type}) is used; "
                                "this is not supported")
        folded = []
        if node.op_type == "MatMul":
            users = consumers.get(node.output[0], [])
            if len(users) == 1 and users[0].op_type == "Add" and node.output[0] != graph.output_name:
                folded = [users[0]]
        chain.append((node, folded))
        current = (folded[-1] if folded else node).output[0]
    return chain


# ---- attributes and padding ----------------------------------------------------------------
def node_attributes(node) -> dict:
    """A node's attributes by name, strings decoded."""
    from onnx import helper

    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in values.items()}


def node_pads(attributes: dict, kernel: tuple[int, ...], strides: tuple[int, ...],
              sizes: tuple[int, int], what: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The padding before and after each spatial axis that `auto_pad` / `pads` give."""
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max((-(-size // s) - 1) * s + k - size, 0) for size, k, s in zip(sizes, kernel, strides, strict=True)]
        small = tuple(t // 2 for t in totals)
        large = tuple(t - t // 2 for t in totals)
        return (small, large) if auto_pad == "SAME_UPPER" else (large, small)
    if auto_pad == "VALID":
        return (0, 0), (0, 0)
    pads = [int(p) for p in attributes.get("pads", (0, 0, 0, 0))]
    if len(pads) != 4:
        raise UserError(f"{what} has pads {pads}; expected 4 values (2-d)")
    return (pads[0], pads[1]), (pads[2], pads[3])
