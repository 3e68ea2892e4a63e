"""ONNX import: graphs exported from PyTorch itself (torch.onnx.export) give PyTorch's numbers.

Every fixture is written here by `torch.onnx.export` (the TorchScript exporter, `dynamo=False`:
the newer exporter needs onnxscript), so no foreign files are needed. The ONNX package's own
reference evaluator (plain numpy) is the independent computation of what a graph outputs.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from cnnscope.app.cli import main
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.nn import onnx_graph
from cnnscope.nn.checkpoint import load_checkpoint
from cnnscope.nn.model import CNN
from cnnscope.nn.onnx_import import MAX_TENSOR_ELEMENTS, import_onnx
from cnnscope.nn.spec import LayerSpec, ModelSpec, Normalization

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

TOLERANCE = 1e-5


def export(module: nn.Module, path, size: int = 28, channels: int = 1, dynamic_batch: bool = True):
    """Write `module` (in eval mode) to `path` with PyTorch's ONNX exporter; returns the path."""
    module.eval()
    axes = {"image": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.rand(2, channels, size, size),), str(path), dynamo=False,
                          input_names=["image"], output_names=["output"], dynamic_axes=axes)
    return path


def mnist_images(mnist, count: int) -> torch.Tensor:
    return to_tensor(mnist.test_x[:count])


def max_difference(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def graph_outputs(path, images: torch.Tensor) -> np.ndarray:
    """What the ONNX graph computes, by onnx's reference evaluator (numpy, not torch)."""
    return ReferenceEvaluator(onnx.load(str(path))).run(None, {"image": images.numpy()})[0]


def imported_outputs(model: CNN, info: dict, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.probabilities(images) if info["outputs"] == "probabilities" else model(images)


# ---- the default model -------------------------------------------------------------------
def test_default_model_round_trip_reproduces_pytorch(small_model, mnist, tmp_path):
    path = export(small_model, tmp_path / "default.onnx")
    model, info = import_onnx(path)
    images = mnist_images(mnist, 500)
    with torch.no_grad():
        expected = small_model(images)
        got = model(images)
    assert max_difference(got, expected) <= TOLERANCE
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert (got.argmax(1).numpy() == mnist.test_y[:500]).mean() > 0.9
    assert max_difference(imported_outputs(model, info, images[:10]), graph_outputs(path, images[:10])) <= TOLERANCE
    # The same network: the seed's names, kinds and sizes, and the Sub/Div became the normalisation.
    assert [(layer.kind, layer.name, layer.size, layer.kernel) for layer in model.spec.layers] == \
        [(layer.kind, layer.name, layer.size, layer.kernel) for layer in small_model.spec.layers]
    assert model.spec.normalization == Normalization("global", 0.1307, 0.3081)
    assert info["outputs"] == "last layer" and info["layers"]["Dense_1"] == "/body/Dense_1/Gemm"


def test_flatten_order_is_channels_first(small_model, tmp_path):
    """ONNX flattens (c, h, w) like PyTorch and cnnscope: the first dense weights are copied unchanged."""
    model, _ = import_onnx(export(small_model, tmp_path / "default.onnx"))
    assert small_model.output_shape("Conv2D_3") == (128, 3, 3)
    assert torch.equal(model.body.Dense_1.weight, small_model.body.Dense_1.weight)
    assert torch.equal(model.body.Conv2D_2.weight, small_model.body.Conv2D_2.weight)


# ---- variants ----------------------------------------------------------------------------
def variant_spec() -> ModelSpec:
    """Two conv layers, 'same' padding, tanh / elu / sigmoid, its own standardisation."""
    layers = (LayerSpec("conv", "Conv2D_1", 12, (5, 5), "tanh", "same"),
              LayerSpec("pool", "Max_Pool_1", kernel=(2, 2)),
              LayerSpec("conv", "Conv2D_2", 20, (3, 3), "elu"),
              LayerSpec("pool", "Max_Pool_2", kernel=(3, 3)),
              LayerSpec("flatten", "Flatten"),
              LayerSpec("dense", "Dense_1", 40, activation="sigmoid"),
              LayerSpec("dense", "Dense_2", 10, activation="softmax"))
    return ModelSpec(layers, normalization=Normalization("global", 0.5, 0.25))


class HandWritten(nn.Module):
    """A LeNet-style PyTorch CNN: relu after the pool, a 'same' pool by ceil_mode, view, x @ W + b, softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 10, 4)
        self.fc1 = nn.Linear(10 * 6 * 6, 30)
        self.weight = nn.Parameter(torch.randn(30, 10) * 0.2)
        self.bias = nn.Parameter(torch.randn(10) * 0.2)

    def forward(self, x):
        x = torch.relu(nn.functional.max_pool2d(self.conv1(x), 2))  # 28 -> 14
        x = nn.functional.max_pool2d(torch.sigmoid(self.conv2(x)), 2, ceil_mode=True)  # 11 -> 6
        x = torch.tanh(self.fc1(x.view(x.shape[0], -1)))
        return torch.softmax(x @ self.weight + self.bias, dim=1)


def test_variant_layout_round_trip(mnist, tmp_path):
    torch.manual_seed(1)
    original = CNN(variant_spec()).eval()
    path = export(original, tmp_path / "variant.onnx", dynamic_batch=False)
    model, info = import_onnx(path)
    images = mnist_images(mnist, 300)
    with torch.no_grad():
        assert max_difference(model(images), original(images)) <= TOLERANCE
    assert info["outputs"] == "last layer"
    assert max_difference(imported_outputs(model, info, images[:2]), graph_outputs(path, images[:2])) <= TOLERANCE
    got = [(layer.kind, layer.size, layer.kernel, layer.activation, layer.padding) for layer in model.spec.layers]
    want = [(layer.kind, layer.size, layer.kernel, layer.activation, layer.padding) for layer in original.spec.layers]
    want[-1] = want[-1][:3] + ("linear",) + want[-1][4:]  # the softmax is not in the graph: cnnscope applies it later
    assert got == want
    assert model.spec.normalization == Normalization("global", 0.5, 0.25)


def test_hand_written_pytorch_cnn(mnist, tmp_path):
    torch.manual_seed(2)
    original = HandWritten().eval()
    path = export(original, tmp_path / "lenet.onnx", dynamic_batch=False)  # view(): a constant shape
    model, info = import_onnx(path)
    images = mnist_images(mnist, 300)
    with torch.no_grad():
        expected = original(images)
    assert info["outputs"] == "probabilities"
    assert max_difference(imported_outputs(model, info, images), expected) <= TOLERANCE
    assert max_difference(imported_outputs(model, info, images[:2]), graph_outputs(path, images[:2])) <= TOLERANCE
    assert [(layer.kind, layer.activation, layer.padding) for layer in model.spec.layers] == [
        ("conv", "relu", "same"), ("pool", "linear", "valid"), ("conv", "sigmoid", "valid"),
        ("pool", "linear", "same"), ("flatten", "linear", "valid"), ("dense", "tanh", "valid"),
        ("dense", "softmax", "valid")]
    assert model.spec.normalization.mode == "none"


def test_dropout_node_becomes_a_dropout_layer(small_model, mnist, tmp_path):
    path = export(small_model, tmp_path / "default.onnx")
    proto = onnx.load(str(path))
    flatten = next(node for node in proto.graph.node if node.op_type == "Flatten")
    dense = next(node for node in proto.graph.node if node.op_type == "Gemm")
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(0.25, np.float32), "ratio"))
    dropout = helper.make_node("Dropout", [flatten.output[0], "ratio"], ["dropped"], name="drop")
    dense.input[0] = "dropped"
    proto.graph.node.insert(list(proto.graph.node).index(dense), dropout)
    onnx.save(proto, str(tmp_path / "dropout.onnx"))
    model, _ = import_onnx(tmp_path / "dropout.onnx")
    assert model.layer_spec("Dropout_1").rate == 0.25 and model.layer_names.index("Dropout_1") == 6
    images = mnist_images(mnist, 100)
    with torch.no_grad():
        assert max_difference(model(images), small_model(images)) <= TOLERANCE


# ---- the command -------------------------------------------------------------------------
def test_cli_writes_a_checkpoint_that_summary_reads(small_model, mnist, tmp_path, capsys):
    path = export(small_model, tmp_path / "default.onnx")
    out = tmp_path / "imported"
    assert main(["import-onnx", str(path), "--out", str(out)]) == 0
    assert "imported" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["source"]["kind"] == "onnx" and config["source"]["opset"] >= 9
    assert config["normalize"] == "0.1307,0.3081"
    model, _ = load_checkpoint(out)
    images = mnist_images(mnist, 200)
    with torch.no_grad():
        assert max_difference(model(images), small_model(images)) <= TOLERANCE
    assert main(["summary", "--model", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Dense_1 (Dense)" in printed and f"Total params: {small_model.parameter_count():,}" in printed


def test_cli_normalisation_for_a_graph_without_one(tmp_path, capsys):
    torch.manual_seed(3)
    path = export(HandWritten(), tmp_path / "lenet.onnx", dynamic_batch=False)
    out = tmp_path / "imported"
    assert main(["import-onnx", str(path), "--out", str(out), "--normalize", "0.2,0.4"]) == 0
    assert "Softmax" in capsys.readouterr().out
    model, _ = load_checkpoint(out)
    assert model.spec.normalization == Normalization("global", 0.2, 0.4)


# ---- bad input ---------------------------------------------------------------------------
class Strided(nn.Module):
    """Two convs, the second with the given options, then a dense layer."""

    def __init__(self, **conv):
        super().__init__()
        self.first = nn.Conv2d(1, 4, 3)
        self.conv = nn.Conv2d(4, 4, 3, **conv)
        self.fc = nn.LazyLinear(10)
        self(torch.zeros(1, 1, 28, 28))  # sizes the dense layer

    def forward(self, x):
        return self.fc(torch.relu(self.conv(self.first(x))).flatten(1))


class AveragePooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        return torch.log_softmax(self.fc(nn.functional.avg_pool2d(self.conv(x), 2).flatten(1)), dim=1)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x, y):
        return self.fc((x + y).flatten(1))


def bad_files(tmp_path, small_model) -> dict:
    """name -> (path, words the one-line message must hold)."""
    good = export(small_model, tmp_path / "good.onnx")
    data = good.read_bytes()
    files = {}

    def write(name, content):
        (tmp_path / name).write_bytes(content)
        return tmp_path / name

    files["random"] = (write("random.onnx", np.random.default_rng(0).bytes(5000)), ["not", "ONNX"])
    files["truncated"] = (write("truncated.onnx", data[: len(data) // 2]), ["ONNX"])
    files["empty"] = (write("empty.onnx", b""), ["not an ONNX model"])
    files["average pool"] = (export(AveragePooled(), tmp_path / "average.onnx"),
                             ["unsupported ONNX operators: AveragePool, LogSoftmax; supported: Conv, Relu", "Softmax (last)"])
    files["stride"] = (export(Strided(stride=2), tmp_path / "stride.onnx"), ["strides [2, 2]", "only 1"])
    files["dilation"] = (export(Strided(dilation=2), tmp_path / "dilation.onnx"), ["dilations [2, 2]"])
    files["groups"] = (export(Strided(groups=2), tmp_path / "groups.onnx"), ["group 2"])
    files["asymmetric"] = (export(nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 2, 3)),
                                  tmp_path / "pad.onnx"), ["unsupported ONNX operators", "Pad"])
    files["dynamic view"] = (export(HandWritten(), tmp_path / "view.onnx"), ["Shape", "torch.flatten(x, 1)"])
    files["pads"] = (export(Strided(padding=2), tmp_path / "pads.onnx"), ["pads [2, 2]", "same"])
    files["rgb"] = (export(CNN(ModelSpec(variant_spec().layers, in_channels=3)), tmp_path / "rgb.onnx", channels=3),
                    ["3 channels"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TwoInputs(), (torch.rand(1, 1, 28, 28), torch.rand(1, 1, 28, 28)),
                          str(tmp_path / "two.onnx"), dynamo=False)
    files["two inputs"] = (tmp_path / "two.onnx", ["2 inputs", "one image input"])
    proto = onnx.load(str(good))
    onnx.save(proto, str(tmp_path / "external.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="external.data", size_threshold=0)
    assert (tmp_path / "external.data").stat().st_size > 800_000  # the weights really are outside
    files["external"] = (tmp_path / "external.onnx", ["external data file"])
    proto = onnx.load(str(good))
    proto.graph.initializer[0].dims[:] = [2**20, 2**20]
    onnx.save(proto, str(tmp_path / "huge.onnx"))
    files["huge"] = (tmp_path / "huge.onnx", ["declares the shape", f"at most {MAX_TENSOR_ELEMENTS}"])
    return files


def test_bad_files_give_one_line_errors_and_no_folder(small_model, tmp_path, capsys):
    for name, (path, words) in bad_files(tmp_path, small_model).items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        capsys.readouterr()
        assert main(["import-onnx", str(path), "--out", str(out)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
        for word in words:
            assert word in err, (name, word, err)
        assert not out.exists(), name


def test_truncations_and_conflicting_normalisation_are_user_errors(small_model, tmp_path, monkeypatch):
    data = export(small_model, tmp_path / "good.onnx").read_bytes()
    for cut in (1, 10, 100, 1000, len(data) // 3, len(data) - 1):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises(UserError):
            import_onnx(tmp_path / "cut.onnx")
    with pytest.raises(UserError, match="standardises its input itself"):
        import_onnx(tmp_path / "good.onnx", Normalization("per_image"))
    with pytest.raises(UserError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")
    monkeypatch.setattr(onnx_graph, "MAX_FILE_BYTES", 1000)  # the size check is in onnx_graph
    with pytest.raises(UserError, match=f"has {len(data):,} bytes; ONNX files up to 1,000 bytes"):
        import_onnx(tmp_path / "good.onnx")


def test_other_spellings_of_same_padding(mnist, tmp_path):
    """auto_pad SAME_UPPER for the conv and explicit pads instead of ceil_mode for the pool: the same model."""
    torch.manual_seed(4)
    original = HandWritten().eval()
    proto = onnx.load(str(export(original, tmp_path / "lenet.onnx", dynamic_batch=False)))
    conv = next(node for node in proto.graph.node if node.op_type == "Conv")
    pool = [node for node in proto.graph.node if node.op_type == "MaxPool"][1]
    for node, name, value in ((conv, "pads", None), (conv, "auto_pad", "SAME_UPPER"),
                              (pool, "ceil_mode", None), (pool, "pads", [0, 0, 1, 1])):
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(kept + ([helper.make_attribute(name, value)] if value is not None else []))
    onnx.save(proto, str(tmp_path / "spelled.onnx"))
    model, info = import_onnx(tmp_path / "spelled.onnx")
    assert [layer.padding for layer in model.spec.layers[:4]] == ["same", "valid", "valid", "same"]
    images = mnist_images(mnist, 100)
    with torch.no_grad():
        assert max_difference(model.probabilities(images), original(images)) <= TOLERANCE
    assert max_difference(imported_outputs(model, info, images[:2]),
                          graph_outputs(tmp_path / "spelled.onnx", images[:2])) <= TOLERANCE


def test_nan_weights_and_fifos_are_refused_and_an_import_loads_through_the_checkpoint_checks(tmp_path, capsys):
    model = CNN(variant_spec())
    with torch.no_grad():
        model.body.Dense_1.weight[3, 4] = float("nan")
    with pytest.raises(UserError, match="hold NaN or infinite values"):
        import_onnx(export(model, tmp_path / "nan.onnx"))
    os.mkfifo(tmp_path / "fifo.onnx")
    with pytest.raises(UserError, match="is not a regular file"):
        import_onnx(tmp_path / "fifo.onnx")
    good = export(CNN(variant_spec()), tmp_path / "good.onnx")
    assert main(["import-onnx", str(good), "--out", str(tmp_path / "ck")]) == 0
    loaded, config = load_checkpoint(tmp_path / "ck")  # the same validation as every checkpoint
    assert config["weights_sha256"] and loaded.spec.layer_names == variant_spec().layer_names
