"""Keras import: files written by real Keras 2.15 (.h5, .keras) and Keras 3 (.keras, .h5) give Keras's numbers.

The fixtures in tests/fixtures/keras were made by tools/make_keras_fixtures.py; each
`<name>.npz` holds Keras's own outputs of every layer for a few fixed inputs.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cnnscope.app.cli import main
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.nn.checkpoint import load_checkpoint
from cnnscope.nn.keras_import import import_keras, read_keras_file
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import Normalization

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

FIXTURES = Path(__file__).parents[1] / "fixtures" / "keras"
TOLERANCE = 1e-5

# (model file, npz with Keras's outputs)
IMPORTABLE = [
    ("articles_k2.h5", "articles_k2.npz"),
    ("articles_k3.keras", "articles_k3.npz"),
    ("variety_k2.h5", "variety_k2.npz"),
    ("variety_k2.keras", "variety_k2.npz"),
    ("variety_k3.h5", "variety_k3.npz"),
    ("variety_k3.keras", "variety_k3.npz"),
]


def expected(npz_name: str) -> dict:
    with np.load(FIXTURES / npz_name) as data:
        return {key: data[key] for key in data.files}


def fixture_normalization(data: dict) -> Normalization:
    return Normalization(str(data["norm_mode"]), float(data["norm_mean"]), float(data["norm_std"]))


def in_keras_layout(model: CNN, name: str, output: torch.Tensor) -> np.ndarray:
    """A cnnscope layer output as Keras has it: channels last, Flatten in (h, w, c) order, softmax applied."""
    array = output.detach().cpu().numpy()
    if array.ndim == 4:
        return array.transpose(0, 2, 3, 1)
    specs, index = model.spec.layers, model.layer_names.index(name)
    while specs[index].kind == "dropout":
        index -= 1
    if specs[index].kind == "flatten":
        channels, height, width = model.output_shape(model.layer_names[index - 1])
        array = array.reshape(-1, channels, height, width).transpose(0, 2, 3, 1).reshape(len(array), -1)
    if name == model.layer_names[-1] and specs[-1].activation == "softmax":
        array = torch.softmax(output, dim=1).detach().cpu().numpy()
    return array


def max_differences(model: CNN, data: dict) -> dict[str, float]:
    """Max |cnnscope - Keras| per layer and for the predictions, cnnscope fed the raw [0, 1] images."""
    raw = torch.from_numpy(data["raw"]).permute(0, 3, 1, 2)
    with torch.no_grad():
        outputs = model.activations(raw, model.layer_names)
        probabilities = model.probabilities(raw)
    diffs = {name: float(np.abs(in_keras_layout(model, name, outputs[name]) - data[f"act_{name}"]).max())
             for name in model.layer_names}
    diffs["predictions"] = float(np.abs(probabilities.numpy() - data["predictions"]).max())
    return diffs


@pytest.mark.parametrize("model_file,npz_name", IMPORTABLE)
def test_every_layer_matches_keras(model_file, npz_name):
    data = expected(npz_name)
    model, source = import_keras(FIXTURES / model_file, fixture_normalization(data))
    assert model.layer_names == [str(name) for name in data["layers"]]  # Keras names kept
    assert source["keras_version"] == str(data["keras_version"])
    diffs = max_differences(model, data)
    assert max(diffs.values()) < TOLERANCE, diffs
    assert not model.training


def test_articles_network_structure():
    model, source = import_keras(FIXTURES / "articles_k2.h5")
    assert source["format"] == "keras-h5"
    assert model.parameter_count() == 208_982
    assert [spec.kind for spec in model.spec.layers] == ["conv", "pool", "conv", "pool", "conv", "flatten", "dense", "dense"]
    assert model.layer_names[:5] == ["Conv2D_1", "Max_Pool_1", "Conv2D_2", "Max_Pool_2", "Conv2D_3"]
    assert model.output_shape("Conv2D_3") == (128, 3, 3)
    assert model.num_classes == 10
    model3, source3 = import_keras(FIXTURES / "articles_k3.keras")
    assert source3["format"] == "keras-v3" and model3.parameter_count() == 208_982


def test_variety_network_structure():
    model, _ = import_keras(FIXTURES / "variety_k3.keras")
    assert model.spec.in_channels == 3 and model.spec.image_size == 17
    assert model.layer_spec("c_same_sigmoid").padding == "same"
    assert model.layer_spec("c_elu_5x3").kernel == (5, 3)
    assert model.output_shape("pool_3") == (5, 4, 5)
    assert model.output_shape("pool_same") == (4, 2, 3)  # 'same' pooling rounds up
    assert float(model.body.c_tanh_nobias.bias.detach().abs().max()) == 0.0  # use_bias=False
    assert model.layer_spec("drop_1").rate == pytest.approx(0.3)


def test_first_dense_rows_follow_channels_first_flatten():
    """The permuted kernel: cnnscope's row (c, h, w) is Keras's row (h, w, c)."""
    model, keras_file = import_keras(FIXTURES / "variety_k2.h5")[0], read_keras_file(FIXTURES / "variety_k2.h5")
    keras_kernel = keras_file.weights["d_tanh"][0]  # (h * w * c) x units
    channels, height, width = model.output_shape("pool_same")
    weight = model.body.d_tanh.weight.detach().numpy()  # units x (c * h * w)
    for c, h, w in [(0, 0, 0), (3, 1, 2), (2, 0, 1)]:
        np.testing.assert_array_equal(weight[:, c * height * width + h * width + w],
                                      keras_kernel[(h * width + w) * channels + c])


def test_imported_articles_network_classifies_real_mnist(mnist):
    data = expected("articles_k2.npz")
    np.testing.assert_allclose(data["raw"][..., 0], mnist.test_x[:4] / 255.0, atol=1e-7)
    model, _ = import_keras(FIXTURES / "articles_k2.h5", fixture_normalization(data))
    images = to_tensor(mnist.test_x[:1000])
    with torch.no_grad():
        predicted = model.probabilities(images).argmax(dim=1).numpy()
    accuracy = float((predicted == mnist.test_y[:1000]).mean())
    assert accuracy > 0.9  # one Keras epoch on 6000 images


def test_cli_writes_a_checkpoint_with_the_normalisation(tmp_path, capsys):
    data = expected("articles_k2.npz")
    mean, std = float(data["norm_mean"]), float(data["norm_std"])
    out = tmp_path / "imported"
    assert main(["import-keras", str(FIXTURES / "articles_k2.h5"), "--out", str(out),
                 "--normalize", f"{mean!r},{std!r}"]) == 0
    printed = capsys.readouterr().out
    assert "normalisation: global" in printed and "208,982" in printed
    model, config = load_checkpoint(out)
    assert config["source"]["kind"] == "keras" and config["source"]["keras_version"] == "2.15.0"
    assert config["spec"]["normalization"] == {"mode": "global", "mean": mean, "std": std}
    assert max(max_differences(model, data).values()) < TOLERANCE
    assert "normalisation: global" in model.summary()


def test_cli_per_image_and_force(tmp_path):
    out = tmp_path / "imported"
    out.mkdir()
    (out / "old.txt").write_text("x")
    assert main(["import-keras", str(FIXTURES / "articles_k3.keras"), "--out", str(out), "--normalize", "per_image",
                 "--force"]) == 0
    model, _ = load_checkpoint(out)
    assert model.spec.normalization.mode == "per_image"
    assert max(max_differences(model, expected("articles_k3.npz")).values()) < TOLERANCE


# ---- errors ----------------------------------------------------------------------------------
def edited_keras_file(tmp_path: Path, edit) -> Path:
    """A copy of variety_k3.keras whose config.json went through `edit(config)`."""
    source = FIXTURES / "variety_k3.keras"
    target = tmp_path / "edited.keras"
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for name in archive.namelist():
            content = archive.read(name)
            if name == "config.json":
                config = json.loads(content)
                edit(config)
                content = json.dumps(config).encode()
            out.writestr(name, content)
    return target


def layer_config(config: dict, name: str) -> dict:
    return next(layer["config"] for layer in config["config"]["layers"] if layer["config"].get("name") == name)


def assert_cli_error(tmp_path, capsys, model_file, *words, extra=()):
    out = tmp_path / "out"
    code = main(["import-keras", str(model_file), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cnnscope import-keras: error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("model_file,words", [
    ("functional_k2.h5", ["functional", "Sequential"]),
    ("functional_k3.keras", ["functional", "Sequential"]),
    ("batchnorm_k2.h5", ["'bn_1'", "BatchNormalization"]),
    ("batchnorm_k3.keras", ["'bn_1'", "BatchNormalization"]),
    ("strided_k2.h5", ["'Conv2D_strided'", "strides [2, 2]"]),
    ("strided_k3.keras", ["'Conv2D_strided'", "strides [2, 2]"]),
    ("dilated_k2.h5", ["'Conv2D_dilated'", "dilation_rate [2, 2]"]),
    ("dilated_k3.keras", ["'Conv2D_dilated'", "dilation_rate [2, 2]"]),
    ("pool_stride_k2.h5", ["'pool_overlapping'", "strides [1, 1]"]),
    ("pool_stride_k3.keras", ["'pool_overlapping'", "strides [1, 1]"]),
    ("weights_only_k2.h5", ["only weights", "model.save"]),
    ("missing.h5", ["no such file"]),
])
def test_cli_refuses_unsupported_files(tmp_path, capsys, model_file, words):
    assert_cli_error(tmp_path, capsys, FIXTURES / model_file, *words)


def test_cli_refuses_files_that_are_not_keras_models(tmp_path, capsys):
    text = tmp_path / "notes.h5"
    text.write_text("not a model")
    assert_cli_error(tmp_path, capsys, text, "not a Keras model file")
    plain_h5 = tmp_path / "data.h5"
    with h5py.File(plain_h5, "w") as handle:
        handle["x"] = np.zeros(3)
    assert_cli_error(tmp_path, capsys, plain_h5, "not a Keras model", "model_config")
    plain_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert_cli_error(tmp_path, capsys, plain_zip, "not a Keras .keras model")
    assert_cli_error(tmp_path, capsys, tmp_path, "is a folder")


@pytest.mark.parametrize("edit,words", [
    (lambda c: layer_config(c, "c_elu_5x3").update(activation="softplus"), ["'c_elu_5x3'", "softplus"]),
    (lambda c: layer_config(c, "d_tanh").update(activation="softmax"), ["'d_tanh'", "softmax", "last layer"]),
    (lambda c: layer_config(c, "c_elu_5x3").update(groups=2), ["'c_elu_5x3'", "groups"]),
    (lambda c: layer_config(c, "pool_3").update(data_format="channels_first"), ["'pool_3'", "channels_first"]),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 17, 15, 3]), ["17x15", "square"]),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, None, None, 3]), ["must be fixed"]),
    (lambda c: c["config"].update(layers=c["config"]["layers"][:-5]), ["last layer must be Dense", "'flat'"]),
    (lambda c: c.update(class_name="Functional"), ["functional"]),
])
def test_cli_refuses_edited_configs(tmp_path, capsys, edit, words):
    assert_cli_error(tmp_path, capsys, edited_keras_file(tmp_path, edit), *words)


def test_cli_refuses_weights_that_do_not_fit(tmp_path, capsys):
    def more_filters(config):
        layer_config(config, "c_linear_same")["filters"] = 5
    assert_cli_error(tmp_path, capsys, edited_keras_file(tmp_path, more_filters), "'c_linear_same'", "shape")


def test_cli_refuses_bad_options(tmp_path, capsys):
    model_file = FIXTURES / "variety_k3.keras"
    assert_cli_error(tmp_path, capsys, model_file, "normalisation", "MEAN,STD", extra=["--normalize", "standard"])
    assert_cli_error(tmp_path, capsys, model_file, "std > 0", extra=["--normalize", "0.1,0"])
    busy = tmp_path / "out"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    code = main(["import-keras", str(model_file), "--out", str(busy)])
    err = capsys.readouterr().err
    assert code == 2 and "already holds files" in err and err.count("\n") == 1
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]
    shutil.rmtree(busy)
    busy.write_text("a file")
    code = main(["import-keras", str(model_file), "--out", str(busy)])
    assert code == 2 and "is a file" in capsys.readouterr().err


def test_library_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        import_keras(tmp_path / "nothing.keras")


def test_older_keras_layouts(tmp_path):
    """Keras <= 2.3 had no InputLayer (the first layer carried batch_input_shape) and stored bytes."""
    def first_layer_shape(config):
        layers = config["config"]["layers"]
        shape = layers.pop(0)["config"]["batch_shape"]
        layers[0]["config"]["batch_input_shape"] = shape
    data = expected("variety_k3.npz")
    model, _ = import_keras(edited_keras_file(tmp_path, first_layer_shape))
    assert max(max_differences(model, data).values()) < TOLERANCE

    old_h5 = tmp_path / "old.h5"
    shutil.copy(FIXTURES / "articles_k2.h5", old_h5)
    with h5py.File(old_h5, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"] = config["config"]["layers"]  # Keras <= 2.2: Sequential config is a bare list
        handle.attrs["model_config"] = np.bytes_(json.dumps(config).encode())
        handle.attrs["keras_version"] = np.bytes_(b"2.2.4")
    data = expected("articles_k2.npz")
    model, source = import_keras(old_h5, fixture_normalization(data))
    assert source["keras_version"] == "2.2.4"
    assert max(max_differences(model, data).values()) < TOLERANCE


def test_per_pixel_import_feeds_keras_the_articles_scaled_images(mnist):
    """With --normalize per-pixel the imported model standardises raw images by the articles'
    StandardScaler (all 70000 images, 0..255 scale) before Keras's layers: raw images that the
    scaler maps onto the fixture's inputs give Keras's outputs. (This fixture's Keras model was not
    trained behind that scaler, so this checks
    the import's arithmetic; the next test imports a model trained behind the scaler.)"""
    from sklearn.preprocessing import StandardScaler

    from cnnscope.app.commands.import_keras import articles_pixel_statistics

    data = expected("articles_k2.npz")
    mean, std = articles_pixel_statistics(None)
    model, _ = import_keras(FIXTURES / "articles_k2.h5", Normalization("per_pixel"), (mean, std))
    scaler = StandardScaler().fit(np.concatenate([mnist.train_x, mnist.test_x]).reshape(70000, -1).astype(np.float32))
    inputs = data["inputs"].reshape(4, -1).astype(np.float64)
    raw = (scaler.inverse_transform(inputs) / 255.0).reshape(4, 1, 28, 28)  # what the scaler maps onto the inputs
    with torch.no_grad():
        probabilities = model.probabilities(torch.from_numpy(raw).float())
        standardised = model.normalize(torch.from_numpy(raw).float())
    assert np.allclose(standardised.numpy().reshape(4, -1), inputs, atol=1e-3)
    assert np.abs(probabilities.numpy() - data["predictions"]).max() < 1e-4
    with pytest.raises(UserError, match="per_pixel normalisation needs pixel statistics"):
        import_keras(FIXTURES / "articles_k2.h5", Normalization("per_pixel"))


def test_a_keras_model_trained_behind_the_articles_scaler_imports_with_its_outputs(mnist):
    """articles_perpixel_k2.h5 was trained (TensorFlow 2.15, tools/make_keras_fixtures.py --only
    per-pixel) on images scaled by the articles' StandardScaler; imported with the per-pixel
    normalisation, cnnscope gives Keras's outputs for the raw test images."""
    from cnnscope.app.commands.import_keras import articles_pixel_statistics

    data = expected("articles_perpixel_k2.npz")
    model, _ = import_keras(FIXTURES / "articles_perpixel_k2.h5", Normalization("per_pixel"),
                            articles_pixel_statistics(None))
    raw = torch.from_numpy(data["raw"]).permute(0, 3, 1, 2)
    assert torch.equal(raw, to_tensor(mnist.test_x[:8]))  # the fixture's images are the real test images
    with torch.no_grad():
        standardised = model.normalize(raw).permute(0, 2, 3, 1).numpy()
        probabilities = model.probabilities(raw).numpy()
    assert np.abs(standardised - data["inputs"]).max() < 1e-4  # what Keras was fed
    assert np.abs(probabilities - data["predictions"]).max() < 1e-5
    assert (probabilities.argmax(axis=1) == mnist.test_y[:8]).mean() >= 0.75  # it learned something


def test_import_keras_per_pixel_on_the_command_line(tmp_path, capsys):
    from cnnscope.app.commands.import_keras import articles_pixel_statistics
    from cnnscope.nn.checkpoint import load_checkpoint

    out = tmp_path / "imported"
    assert main(["import-keras", str(FIXTURES / "articles_k2.h5"), "--out", str(out), "--normalize", "per-pixel"]) == 0
    assert "normalisation: per_pixel (a mean and std for each of the 784 pixels" in capsys.readouterr().out
    model, config = load_checkpoint(out)
    mean, std = articles_pixel_statistics(None)
    assert config["spec"]["normalization"]["mode"] == "per_pixel"
    assert torch.equal(model.normalize.pixel_mean, mean) and torch.equal(model.normalize.pixel_std, std)


# ---- hostile files: bounded reads, no reads of other files, one-line errors -------------------
KERNEL = "model_weights/Conv2D_1/Conv2D_1/kernel:0"


def edited_h5(tmp_path: Path, edit) -> Path:
    """A copy of articles_k2.h5 changed by `edit(handle, tmp_path)` (h5py, read-write)."""
    target = tmp_path / "edited.h5"
    shutil.copy(FIXTURES / "articles_k2.h5", target)
    with h5py.File(target, "r+") as handle:
        edit(handle, tmp_path)
    return target


def secret_file(tmp_path: Path) -> Path:
    """Another local file a hostile model would like cnnscope to read into the weights it writes."""
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as handle:
        handle["data"] = np.full((3, 3, 1, 32), 7.0, dtype=np.float32)
        handle.create_group("group")
    return secret


def replace_dataset(name, make):
    def edit(handle, tmp_path):
        del handle[name]
        make(handle, name, tmp_path)
    return edit


def external_link(handle, name, tmp_path):
    handle[name] = h5py.ExternalLink(str(secret_file(tmp_path)), "/data")


def external_group(handle, name, tmp_path):
    handle[name] = h5py.ExternalLink(str(secret_file(tmp_path)), "/group")


def external_storage(handle, name, tmp_path):
    raw = tmp_path / "secret.raw"
    raw.write_bytes(np.full(288, 7.0, dtype=np.float32).tobytes())
    handle.create_dataset(name, shape=(3, 3, 1, 32), dtype="float32", external=[(str(raw), 0, 288 * 4)])


def virtual_dataset(handle, name, tmp_path):
    layout = h5py.VirtualLayout(shape=(3, 3, 1, 32), dtype="float32")
    layout[:] = h5py.VirtualSource(str(secret_file(tmp_path)), "data", shape=(3, 3, 1, 32))
    handle.create_virtual_dataset(name, layout)


def declared_huge(handle, name, tmp_path):
    """10^11 values declared, nothing written: a few KB on disk, 400 GB if read."""
    handle.create_dataset(name, shape=(10**5, 10**6), dtype="float32", chunks=(1, 1000), compression="gzip")


def integers(handle, name, tmp_path):
    handle[name] = np.ones((3, 3, 1, 32), dtype=np.int64)


def poisoned(handle, name, tmp_path):
    values = np.zeros((3, 3, 1, 32), dtype=np.float32)
    values[1, 1, 0, 5] = np.nan
    handle[name] = values


def model_config_edit(change):
    def edit(handle, tmp_path):
        config = json.loads(handle.attrs["model_config"])
        handle.attrs["model_config"] = change(config)
    return edit


def first_conv(config):
    return config["config"]["layers"][0]["config"] if config["config"]["layers"][0]["class_name"] == "Conv2D" \
        else config["config"]["layers"][1]["config"]


HOSTILE_H5 = {
    "external link as a weight": (replace_dataset(KERNEL, external_link), ["external link to", "secret.h5", "refused"]),
    "external link as a layer group": (replace_dataset("model_weights/Conv2D_2", external_group), ["'Conv2D_2'", "external link"]),
    "external link as model_weights": (replace_dataset("model_weights", external_group), ["'model_weights'", "external link"]),
    "external raw storage": (replace_dataset(KERNEL, external_storage), ["external storage", "refused"]),
    "virtual dataset of another file": (replace_dataset(KERNEL, virtual_dataset), ["external storage", "refused"]),
    "declared-huge dataset": (replace_dataset(KERNEL, declared_huge), ["declares the shape [100000, 1000000]"]),
    "integer weights": (replace_dataset(KERNEL, integers), ["dtype int64", "must be floats"]),
    "NaN weight": (replace_dataset(KERNEL, poisoned), ["kernel:0", "NaN or infinite"]),
    "model_config not JSON": (lambda handle, _: handle.attrs.__setitem__("model_config", "{oops"), ["malformed model config"]),
    "filters as text": (model_config_edit(lambda c: (first_conv(c).update(filters="many"), json.dumps(c))[1]),
                        ["malformed config", "ValueError"]),
    "kernel_size missing": (model_config_edit(lambda c: (first_conv(c).pop("kernel_size"), json.dumps(c))[1]),
                            ["malformed config", "KeyError"]),
    "10^9 filters": (model_config_edit(lambda c: (first_conv(c).update(filters=10**9), json.dumps(c))[1]),
                     ["filters of Conv2D_1 must be a whole number from 1 to 4,096"]),
    "a layer that is no object": (model_config_edit(lambda c: (c["config"]["layers"].append(3), json.dumps(c))[1]),
                                  ["malformed model config"]),
}


@pytest.mark.parametrize("case", HOSTILE_H5)
def test_hostile_h5_files_are_refused_in_one_line(tmp_path, case):
    edit, words = HOSTILE_H5[case]
    with pytest.raises(UserError) as error:
        import_keras(edited_h5(tmp_path, edit))
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value), str(error.value)


def rezipped(tmp_path: Path, members: dict[str, bytes] | None = None, compression=zipfile.ZIP_DEFLATED) -> Path:
    """variety_k3.keras rewritten with some members replaced."""
    target = tmp_path / "hostile.keras"
    with zipfile.ZipFile(FIXTURES / "variety_k3.keras") as archive, zipfile.ZipFile(target, "w", compression) as out:
        for name in archive.namelist():
            out.writestr(name, (members or {}).get(name, archive.read(name)))
    return target


def patch_central_directory(path: Path, member: str, offset: int, value: bytes) -> Path:
    """Overwrite bytes of `member`'s central-directory entry (sizes at 20/24, flags at 8)."""
    data = bytearray(path.read_bytes())
    start = 0
    while True:
        start = data.index(b"PK\x01\x02", start)
        name_length = int.from_bytes(data[start + 28:start + 30], "little")
        if data[start + 46:start + 46 + name_length] == member.encode():
            data[start + offset:start + offset + len(value)] = value
            path.write_bytes(bytes(data))
            return path
        start += 4


def weights_with(edit) -> bytes:
    """model.weights.h5 of variety_k3.keras changed by `edit(handle)`."""
    with zipfile.ZipFile(FIXTURES / "variety_k3.keras") as archive:
        data = archive.read("model.weights.h5")
    buffer = io.BytesIO(data)
    with h5py.File(buffer, "r+") as handle:
        edit(handle)
    return buffer.getvalue()


def keras_external_link(tmp_path):
    secret = secret_file(tmp_path)

    def edit(handle):
        del handle["layers/conv2d/vars/0"]
        handle["layers/conv2d/vars/0"] = h5py.ExternalLink(str(secret), "/data")
    return rezipped(tmp_path, {"model.weights.h5": weights_with(edit)})


def corrupt_deflate(tmp_path):
    path = rezipped(tmp_path)
    data = bytearray(path.read_bytes())
    start = data.index(b"config.json") + len("config.json") + 40  # inside its deflate stream
    data[start:start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return path


HOSTILE_KERAS = {
    "config.json inflating to 17 MiB": (lambda t: rezipped(t, {"config.json": b" " * (17 * 2**20)}),
                                        ["config.json inside declares 17,825,792 bytes", "at most 16,777,216"]),
    "weights declaring 4 GB": (lambda t: patch_central_directory(rezipped(t), "model.weights.h5", 24,
                                                                 (4 * 10**9).to_bytes(4, "little")),
                               ["model.weights.h5 inside declares 4,000,000,000 bytes"]),
    "config.json lying about its size": (lambda t: patch_central_directory(rezipped(t), "config.json", 24,
                                                                           (100).to_bytes(4, "little")),
                                         ["is not a readable .keras file"]),
    "corrupt deflate stream": (corrupt_deflate, ["is not a readable .keras file"]),
    "encrypted member": (lambda t: patch_central_directory(rezipped(t), "config.json", 8, b"\x01\x00"),
                         ["is not a readable .keras file"]),
    "external link in model.weights.h5": (keras_external_link, ["external link to", "refused"]),
    "weights.h5 that is no HDF5": (lambda t: rezipped(t, {"model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(100)}),
                                   ["model.weights.h5 inside is not readable"]),
    "10^9 units": (lambda t: edited_keras_file(t, lambda c: layer_config(c, "d_tanh").update(units=10**9)),
                   ["units of d_tanh must be a whole number from 1 to 65,536"]),
}


@pytest.mark.parametrize("case", HOSTILE_KERAS)
def test_hostile_keras_archives_are_refused_in_one_line(tmp_path, case):
    make, words = HOSTILE_KERAS[case]
    with pytest.raises(UserError) as error:
        import_keras(make(tmp_path))
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value), str(error.value)


def test_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "model.h5")
    with pytest.raises(UserError, match="is not a regular file"):
        import_keras(tmp_path / "model.h5")


def test_external_links_are_refused_by_the_cli_and_nothing_is_written(tmp_path, capsys):
    model_file = edited_h5(tmp_path, replace_dataset(KERNEL, external_link))
    assert_cli_error(tmp_path, capsys, model_file, "external link to", "secret.h5")
    model_file = keras_external_link(tmp_path)
    assert_cli_error(tmp_path, capsys, model_file, "external link to")
