"""Hostile checkpoints: every bad config.json or model.safetensors is refused with one line naming
the problem, before a model of the size it asks for is allocated."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnscope.errors import CheckpointError
from cnnscope.files import sha256_file
from cnnscope.nn.checkpoint import MAX_JSON_BYTES, load_checkpoint, read_config, save_checkpoint
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import MAX_PARAMETERS, ModelSpec, Normalization
from helpers import assert_one_line_error, run_cli


@pytest.fixture()
def folder(small_model_dir, tmp_path):
    """A copy of the small model's checkpoint folder, to be damaged by the test."""
    return shutil.copytree(small_model_dir, tmp_path / "ck")


def edit_config(folder, change):
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def layer(config, name):
    return next(entry for entry in config["spec"]["layers"] if entry["name"] == name)


def set_in(path, value):
    """A change of config.json: `path` is a list of keys (layer names select a layer)."""
    def change(config):
        node = config
        for key in path[:-1]:
            node = layer(config, key) if isinstance(key, str) and key[0].isupper() else node[key]
        node[path[-1]] = value
    return change


def drop(path):
    def change(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def add_layers(count):
    def change(config):
        dense = layer(config, "Dense_2")
        config["spec"]["layers"][-1:] = [{**dense, "name": f"Dense_x{i}"} for i in range(count)]
    return change


HOSTILE_CONFIGS = {
    # sizes: refused before the model is built (a 10^9-unit dense layer would need terabytes)
    "huge dense layer": (set_in(["Dense_1", "size"], 10**9), "spec.layers.6.size: Input should be less than or equal to 65536"),
    "huge conv layer": (set_in(["Conv2D_1", "size"], 5000), "filters of Conv2D_1 must be a whole number from 1 to 4,096"),
    "huge image": (set_in(["spec", "image_size"], 10**6), "image_size: Input should be less than or equal to 1024"),
    "too many parameters": (set_in(["Dense_1", "size"], 60000), f"parameters; the limit is {MAX_PARAMETERS:,}"),
    "huge layer output": (lambda c: (set_in(["spec", "image_size"], 1024)(c), set_in(["Conv2D_1", "size"], 4096)(c)),
                          "values per image; the limit is 16,777,216"),
    "negative filters": (set_in(["Conv2D_2", "size"], -64), "Input should be greater than or equal to 0"),
    "zero units": (set_in(["Dense_1", "size"], 0), "units of Dense_1 must be a whole number from 1"),
    "fractional size": (set_in(["Conv2D_1", "size"], 3.5), "layers.0.size: Input should be a valid integer, got 3.5"),
    "size as text": (set_in(["Conv2D_1", "size"], "32"), "layers.0.size: Input should be a valid integer"),
    "size as bool": (set_in(["Conv2D_1", "size"], True), "layers.0.size: Input should be a valid integer"),
    "zero kernel": (set_in(["Conv2D_1", "kernel"], [0, 3]), "kernel of Conv2D_1 must be a whole number from 1 to 64"),
    "huge kernel": (set_in(["Conv2D_1", "kernel"], [3, 1000]), "layers.0.kernel.1: Input should be less than or equal to 64"),
    "3-d kernel": (set_in(["Conv2D_1", "kernel"], [3, 3, 3]), "layers.0.kernel: Tuple should have at most 2 items"),
    "kernel larger than input": (set_in(["Conv2D_3", "kernel"], [9, 9]), "leaves no pixels"),
    "unknown layer kind": (set_in(["Conv2D_1", "kind"], "lstm"), "layers.0.kind: Input should be 'conv', 'pool'"),
    "unknown activation": (set_in(["Conv2D_1", "activation"], "swish"), "unknown activation of Conv2D_1 'swish'"),
    "dropout rate 1.5": (lambda c: c["spec"]["layers"].insert(6, {"kind": "dropout", "name": "Drop", "rate": 1.5}),
                         "rate: Input should be less than 1"),
    "duplicate layer names": (set_in(["Dense_2", "name"], "Dense_1"), "duplicate layer name 'Dense_1'"),
    "name with a dot": (set_in(["Dense_2", "name"], "a.b"), "without '.'"),
    "dense before flatten": (lambda c: c["spec"]["layers"].insert(0, layer(c, "Dense_2")), "needs a Flatten layer"),
    "no layers": (set_in(["spec", "layers"], []), "layers: List should have at least 1 item"),
    "65 layers": (add_layers(60), "layers: List should have at most 64 items"),
    "zero input channels": (set_in(["spec", "in_channels"], 0), "in_channels: Input should be greater than or equal to 1"),
    "NaN mean": (set_in(["spec", "normalization", "mean"], float("nan")), "normalization.mean: Input should be a finite number"),
    "infinite std": (set_in(["spec", "normalization", "std"], float("inf")), "normalization.std: Input should be a finite number"),
    "zero std": (set_in(["spec", "normalization", "std"], 0.0), "normalisation std must be > 0"),
    "unknown normalisation": (set_in(["spec", "normalization", "mode"], "zscore"), "normalization.mode: Input should be"),
    "unknown layer field": (set_in(["Dense_1", "units"], 100), "spec.layers.6.units: Extra inputs are not permitted"),
    "unknown spec field": (set_in(["spec", "depth"], 3), "spec.depth: Extra inputs are not permitted"),
    "missing spec": (drop(["spec"]), "spec: Field required"),
    "missing layers": (drop(["spec", "layers"]), "spec.layers: Field required"),
    "spec not an object": (set_in(["spec"], [1, 2]), "spec: Input should be a valid dictionary"),
    "epoch as text": (set_in(["epoch"], "3"), "epoch: Input should be a valid integer"),
    "negative epoch": (set_in(["epoch"], -1), "epoch: Input should be greater than or equal to 0"),
    "malformed weights hash": (set_in(["weights_sha256"], "abc"), "weights_sha256: String should match pattern"),
    "other weights' hash": (set_in(["weights_sha256"], "0" * 64), "is not the weights config.json was saved with"),
    "wrong format": (set_in(["format"], "keras"), "not a cnnscope checkpoint"),
}


@pytest.mark.parametrize("case", HOSTILE_CONFIGS)
def test_hostile_configs_are_refused_in_one_line(folder, case):
    change, message = HOSTILE_CONFIGS[case]
    edit_config(folder, change)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(folder)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is not a readable cnnscope config"),
    (b"\xff\xfe\x00", "is not a readable cnnscope config"),
    (b"[1, 2, 3]", "is not a cnnscope checkpoint"),
    (b"[" * 100_000 + b"]" * 100_000, "is not a readable cnnscope config"),  # nesting deeper than the parser's stack
    (b" " * (MAX_JSON_BYTES + 1), f"the {MAX_JSON_BYTES:,} a cnnscope config may have"),
], ids=["not JSON", "not UTF-8", "a list", "deeply nested", "too large"])
def test_config_files_that_are_no_config_are_refused(folder, content, message):
    (folder / "config.json").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


def test_a_fifo_or_folder_named_config_json_is_refused_without_hanging(folder):
    """A FIFO would block `open` until someone writes to it: the check looks at the file type first."""
    config = (folder / "config.json").read_bytes()
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("reading the FIFO hung"))
    signal.alarm(20)
    try:
        with pytest.raises(CheckpointError, match="is not a regular file"):
            load_checkpoint(folder)
        (folder / "config.json").unlink()
        (folder / "config.json").mkdir()
        with pytest.raises(CheckpointError, match="is not a regular file"):
            read_config(folder)
        (folder / "config.json").rmdir()
        (folder / "config.json").write_bytes(config)
        (folder / "model.safetensors").unlink()
        os.mkfifo(folder / "model.safetensors")
        with pytest.raises(CheckpointError, match="is not a regular file"):
            load_checkpoint(folder)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def weights_change(change):
    """A change of model.safetensors; config.json's hash is updated so the header checks are reached."""
    def apply(folder):
        tensors = load_file(str(folder / "model.safetensors"))
        change(tensors)
        save_file(tensors, str(folder / "model.safetensors"))
        edit_config(folder, set_in(["weights_sha256"], sha256_file(folder / "model.safetensors")))
    return apply


def set_tensor(name, make):
    def change(tensors):
        tensors[name] = make(tensors[name])
    return change


def poison(value):
    def make(tensor):
        tensor = tensor.clone()
        tensor.view(-1)[7] = value
        return tensor
    return make


HOSTILE_WEIGHTS = {
    "NaN weight": (weights_change(set_tensor("body.Dense_1.weight", poison(float("nan")))),
                   "tensor body.Dense_1.weight holds NaN or infinite values"),
    "infinite bias": (weights_change(set_tensor("body.Conv2D_2.bias", poison(float("-inf")))),
                      "tensor body.Conv2D_2.bias holds NaN or infinite values"),
    "missing tensor": (weights_change(lambda t: t.pop("body.Dense_2.bias")), "the file lacks body.Dense_2.bias"),
    "unknown tensor": (weights_change(lambda t: t.update(extra=torch.zeros(3))), "has unknown tensors extra"),
    "wrong shape": (weights_change(set_tensor("body.Dense_2.weight", lambda t: torch.zeros(10, 50))),
                    "tensor body.Dense_2.weight has shape [10, 50], the spec needs [10, 100]"),
    "bigger than the spec": (weights_change(set_tensor("body.Dense_1.weight", lambda t: torch.zeros(100, 10**6))),
                             "has shape [100, 1000000], the spec needs [100, 1152]"),
    "float64": (weights_change(set_tensor("body.Conv2D_1.weight", lambda t: t.double())), "has dtype F64, expected F32"),
    "integers": (weights_change(set_tensor("body.Conv2D_1.bias", lambda t: t.long())), "has dtype I64, expected F32"),
}


@pytest.mark.parametrize("case", HOSTILE_WEIGHTS)
def test_hostile_weights_are_refused_naming_the_tensor(folder, case):
    change, message = HOSTILE_WEIGHTS[case]
    change(folder)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(folder)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_truncated_or_swapped_weights_are_refused(folder, small_model_dir):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:1000])
    with pytest.raises(CheckpointError, match="is not the weights config.json was saved with"):
        load_checkpoint(folder)
    edit_config(folder, drop(["weights_sha256"]))  # an older checkpoint without the hash: the header check catches it
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(folder)


def test_nan_pixel_statistics_are_refused(tmp_path, mnist):
    spec = ModelSpec(ModelSpec.from_lists().layers, normalization=Normalization("per_pixel"))
    model = CNN(spec)
    save_checkpoint(model, tmp_path / "pp")
    weights_change(set_tensor("normalize.pixel_std", poison(float("nan"))))(tmp_path / "pp")
    with pytest.raises(CheckpointError, match="tensor normalize.pixel_std holds NaN"):
        load_checkpoint(tmp_path / "pp")


def test_a_good_checkpoint_still_loads_bit_for_bit(folder, small_model, mnist):
    model, config = load_checkpoint(folder)
    x = torch.from_numpy(mnist.test_x[:5]).float().unsqueeze(1) / 255
    assert torch.equal(model(x), small_model(x))
    assert config["weights_sha256"] == sha256_file(folder / "model.safetensors")


def test_hostile_checkpoints_are_one_line_errors_in_the_cli(folder, capsys):
    edit_config(folder, set_in(["Dense_1", "size"], 10**9))
    code, _, err = run_cli(["summary", "--model", str(folder)], capsys)
    assert_one_line_error(code, err, "spec.layers.6.size: Input should be less than or equal to 65536")
    edit_config(folder, set_in(["Dense_1", "size"], 100))
    weights_change(set_tensor("body.Dense_1.weight", poison(float("nan"))))(folder)
    code, _, err = run_cli(["predict", "--model", str(folder), "--index", "0"], capsys)
    assert_one_line_error(code, err, "tensor body.Dense_1.weight holds NaN or infinite values")
