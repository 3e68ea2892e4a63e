"""Other network layouts and the per-pixel standardisation through the CLI: `train --conv/--pools/
--dense/--spec/--normalize`, resume and reset keeping the layout, the other commands on such a
model, the model's own split for `oip --start test:N`, and no progress bar in logs."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from cnnscope.app.cli import build_parser, main
from cnnscope.nn.checkpoint import load_checkpoint
from helpers import assert_one_line_error, run_cli

# article III's choices beyond relu: tanh, sigmoid and elu conv layers, a tanh hidden layer and a
# sigmoid output; one pool fewer than the articles (after Conv2D_1 only)
ODD_LAYOUT = ["--conv", "8:3:tanh,16:3:sigmoid,16:3x3:elu", "--pools", "2", "--dense", "20:tanh,10:sigmoid"]
TINY = ["--train-images", "300", "--test-images", "100", "--epochs", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def odd_model_dir(tmp_path_factory):
    """A model of ODD_LAYOUT trained for one tiny epoch on the articles' seed split."""
    out = tmp_path_factory.mktemp("odd") / "model"
    assert main(["train", "--out", str(out), *ODD_LAYOUT, *TINY, "--split", "seed"]) == 0
    return out


def test_a_sigmoid_tanh_layout_is_trained_and_stored(odd_model_dir, capsys):
    model, config = load_checkpoint(odd_model_dir)
    assert model.layer_names == ["Conv2D_1", "Max_Pool_1", "Conv2D_2", "Conv2D_3", "Flatten", "Dense_1", "Dense_2"]
    assert [layer.activation for layer in model.spec.layers if layer.kind in ("conv", "dense")] == [
        "tanh", "sigmoid", "elu", "tanh", "sigmoid"]
    assert config["settings"]["conv"] == [[8, [3, 3], "tanh"], [16, [3, 3], "sigmoid"], [16, [3, 3], "elu"]]
    assert model.output_shape("Conv2D_3") == (16, 9, 9)  # 28 -> 26 -> 13 -> 11 -> 9
    # Keras's counts by hand: conv (k*k*in + 1)*filters, dense (in + 1)*units
    counts = [(9 * 1 + 1) * 8, (9 * 8 + 1) * 16, (9 * 16 + 1) * 16, (16 * 9 * 9 + 1) * 20, (20 + 1) * 10]
    code, out, _ = run_cli(["summary", "--model", str(odd_model_dir)], capsys)
    assert code == 0 and f"Total params: {sum(counts):,}" in out
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.startswith(("Conv2D", "Dense"))}
    assert rows == dict(zip(["Conv2D_1", "Conv2D_2", "Conv2D_3", "Dense_1", "Dense_2"], [f"{c:,}" for c in counts],
                            strict=True))
    probabilities = model.probabilities(torch.zeros(2, 1, 28, 28))
    assert bool(((probabilities > 0) & (probabilities < 1)).all())  # sigmoid outputs, as Keras


@pytest.mark.slow
def test_resume_and_reset_keep_the_layout(odd_model_dir, tmp_path, capsys):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(odd_model_dir, folder)
    code, out, err = run_cli(["train", "--out", str(folder), "--resume", "--epochs", "2", "--no-progress"], capsys)
    assert code == 0, err
    model, config = load_checkpoint(folder)
    assert config["epoch"] == 2 and model.layer_names[3] == "Conv2D_3" and model.spec.layers[-1].activation == "sigmoid"
    # the same layout given again is fine; another one is refused before anything changes
    before = (folder / "model.safetensors").read_bytes()
    code, _, err = run_cli(["train", "--out", str(folder), "--resume", "--epochs", "3", "--conv", "8:3:relu"], capsys)
    assert_one_line_error(code, err, "--resume keeps it, so a different --conv is refused")
    code, _, err = run_cli(["train", "--out", str(folder), "--reset", *TINY, "--dense", "50:relu,10:softmax"], capsys)
    assert_one_line_error(code, err, "--reset keeps it, so a different --dense is refused")
    assert (folder / "model.safetensors").read_bytes() == before
    code, out, err = run_cli(["train", "--out", str(folder), "--reset", *TINY, "--split", "seed"], capsys)
    assert code == 0, err
    reset, _ = load_checkpoint(folder)
    original, _ = load_checkpoint(odd_model_dir)
    assert reset.spec == original.spec
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(reset(x), original(x))  # the same initial weights, the same first epoch


@pytest.mark.parametrize("command", [
    ["predict", "--index", "3"],
    ["evaluate", "--out", "{tmp}/ev"],
    ["activations", "--layer", "all", "--index", "0,1", "--out", "{tmp}"],
    ["patterns", "--count", "20", "--out", "{tmp}"],
    ["explain", "--index", "0", "--out", "{tmp}"],
    ["oip", "--layer", "Conv2D_3", "--maps", "0-1", "--steps", "5", "--out", "{tmp}"],
    ["dream", "--sample", "flower", "--steps", "3", "--rounds", "1", "--max-side", "64", "--quiet", "--out", "{tmp}"],
])
def test_every_command_works_on_another_layout(odd_model_dir, tmp_path, capsys, command):
    argv = [part.replace("{tmp}", str(tmp_path)) for part in command]
    code, out, err = run_cli([argv[0], "--model", str(odd_model_dir), *argv[1:]], capsys)
    assert code == 0, err
    written = [p for p in tmp_path.rglob("*") if p.suffix in (".png", ".json")]
    assert written or argv[0] == "predict"
    if argv[0] == "dream":
        assert any("Conv2D_3-0" in p.name for p in written)  # map 0 of the deepest conv layer by default


def test_the_explorer_answers_for_another_layout(odd_model_dir, mnist, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cnnscope.app.explorer.oips import OipSettings
    from cnnscope.app.explorer.web import create_app

    model, config = load_checkpoint(odd_model_dir)
    app = create_app(model, config, mnist, tmp_path, oip_settings=OipSettings(steps=5, restarts=1, seed=0))
    with TestClient(app) as client:
        info = client.get("/api/info").json()
        assert "Conv2D_3" in json.dumps(info) and "Max_Pool_2" not in json.dumps(info)
        view = client.get("/api/test/3").json()
        assert "Dense_2" in json.dumps(view)
        oip = client.post("/api/oip/Conv2D_3", json={"maps": [1]}).json()["oips"][0]
        assert client.get(oip["url"]).status_code == 200


def test_oip_start_from_a_test_image_uses_the_models_split(odd_model_dir, mnist):
    from cnnscope.app.commands.oip import prepare
    from cnnscope.data.mnist import load_mnist
    from cnnscope.optvis.starts import from_dataset

    args = build_parser(only={"oip"}).parse_args(
        ["oip", "--model", str(odd_model_dir), "--layer", "Conv2D_3", "--maps", "0", "--start", "test:5"])
    start = prepare(args)["start"]
    seed_split = load_mnist(split="seed", seed=0)
    assert torch.equal(start, from_dataset(seed_split, 5))
    assert not torch.equal(start, from_dataset(mnist, 5))  # the official split's test image 5 is another one


@pytest.mark.parametrize("args, message", [
    (["--conv", "32:3:relu,64:3:relu", "--pools", "2,2"], "--pools: 2 pools for 2 conv layers: at most 1"),
    (["--conv", "32:3:relu", "--pools", "2"], "1 pools for 1 conv layers: at most 0"),
    (["--conv", "8:3,8:3,8:5,8:1", "--pools", "2,2,2"], "Max_Pool_3 (2x2) on the 1x1 map of Conv2D_3 leaves no pixels"),
    (["--conv", "32:3,64:3,128:7"], "the 7x7 kernel of Conv2D_3 is larger than its 5x5 input"),
    (["--conv", "0:3:relu"], "--conv: Conv2D_1 needs at least 1 filter, got 0"),
    (["--conv=-8:3:relu"], "Conv2D_1 needs at least 1 filter, got -8"),
    (["--dense", "0:relu,10:softmax"], "--dense: Dense_1 needs at least 1 unit, got 0"),
    (["--conv", "32:3:swish"], "unknown activation 'swish' for Conv2D_1; allowed: relu, sigmoid, elu, tanh"),
    (["--dense", "100:elu,10:softmax"], "unknown activation 'elu' for Dense_1 (hidden layer); allowed: relu, sigmoid, tanh"),
    (["--dense", "100:relu,10:tanh"], "unknown activation 'tanh' for Dense_2 (output layer); allowed: softmax, sigmoid"),
    (["--dense", "100:relu,7:softmax"], "the output layer Dense_2 has 7 units; MNIST needs 10"),
    (["--conv", "32"], "must look like FILTERS:KERNEL[:ACTIVATION]"),
    (["--conv", "32:3y3:relu"], "kernel '3y3' must be a whole number or HxW"),
    (["--conv", "32:3,,64:3"], "has an empty entry"),
    (["--pools", "big"], "pool size 'big' must be a whole number or HxW"),
    (["--dense", "ten"], "number of units must be a whole number, got 'ten'"),
    (["--normalize", "per-channel"], "--normalize: unknown normalisation 'per_channel'; allowed: global, per_pixel"),
    (["--spec", "{tmp}/missing.json"], "--spec: layout file {tmp}/missing.json does not exist"),
    (["--spec", "{tmp}/layout.json", "--conv", "8:3"], "give the layout either as --spec or as --conv/--pools/--dense"),
])
def test_bad_layouts_are_refused_in_one_line_before_anything_is_written(args, message, tmp_path, capsys):
    (tmp_path / "layout.json").write_text('{"conv": [[8, 3, 0]]}')
    out = tmp_path / "model"
    argv = [part.replace("{tmp}", str(tmp_path)) for part in args]
    code, _, err = run_cli(["train", "--out", str(out), "--no-progress", *argv], capsys)
    assert_one_line_error(code, err, message.replace("{tmp}", str(tmp_path)))
    assert not out.exists()


@pytest.mark.parametrize("body, message", [
    ("[1, 2]", "must hold a JSON object with the keys conv, pools, dense"),
    ('{"conv": [[8, 3, 0]], "layers": 3}', "has unknown keys layers"),
    ('{"conv": [[8, 3, 7]]}', "activation code 7 of conv layer 1 is not one of the articles' (0 relu, 1 sigmoid"),
    ('{"conv": [[8, [3], 0]]}', "kernel of conv layer 1 must be a whole number or [height, width]"),
    ('{"conv": [[0, 3, 0]]}', "Conv2D_1 needs at least 1 filter, got 0"),
    ('{"dense": [[100, 0], [10, 2]]}', "activation code 2 of dense layer 2"),
    ("{not json", "is not readable JSON"),
])
def test_bad_layout_files_are_refused_naming_the_file(body, message, tmp_path, capsys):
    spec = tmp_path / "layout.json"
    spec.write_text(body)
    out = tmp_path / "model"
    code, _, err = run_cli(["train", "--out", str(out), "--spec", str(spec)], capsys)
    assert_one_line_error(code, err, message)
    assert f"--spec: layout file {spec}" in err
    assert not out.exists()


def test_a_layout_file_with_the_articles_codes_trains_that_layout(tmp_path, capsys):
    spec = tmp_path / "layout.json"  # li_Conv, li_Pool and li_MLP as article III writes them, activations coded
    spec.write_text(json.dumps({"conv": [[16, [3, 3], 3], [16, [3, 3], 1]], "pools": [[[2, 2]]],
                                "dense": [[30, 2], [10, 1]]}))
    out = tmp_path / "model"
    code, stdout, err = run_cli(["train", "--out", str(out), "--spec", str(spec), *TINY], capsys)
    assert code == 0, err
    assert "layout conv 16:3x3:tanh,16:3x3:sigmoid, pools 2x2, dense 30:tanh,10:sigmoid" in stdout
    model, _ = load_checkpoint(out)
    assert model.output_shape("Conv2D_2") == (16, 11, 11) and model.output_shape("Dense_1") == (30,)


def test_per_pixel_training_stores_the_scalers_statistics(mnist, tmp_path, capsys):
    from sklearn.preprocessing import StandardScaler

    out = tmp_path / "model"
    code, stdout, err = run_cli(["train", "--out", str(out), "--normalize", "per-pixel", *TINY], capsys)
    assert code == 0, err
    assert "normalisation per_pixel" in stdout
    model, config = load_checkpoint(out)
    assert config["spec"]["normalization"]["mode"] == "per_pixel"
    scaler = StandardScaler().fit(mnist.train_x.reshape(60000, -1) / 255.0)  # the whole training split
    assert np.allclose(model.normalize.pixel_mean.flatten().numpy(), scaler.mean_, rtol=1e-6, atol=1e-8)
    assert np.allclose(model.normalize.pixel_std.flatten().numpy(), scaler.scale_, rtol=1e-6, atol=1e-8)
    # dreams in octaves need one affine for the whole photo: refused in one line, nothing written
    code, _, err = run_cli(["dream", "--model", str(out), "--sample", "flower", "--mode", "octaves",
                            "--out", str(tmp_path / "dreams")], capsys)
    assert_one_line_error(code, err, "this model standardises each of its 28x28 pixels separately (per_pixel "
                                     "normalisation); use --mode downscale")
    assert not (tmp_path / "dreams").exists()
    code, _, err = run_cli(["oip", "--model", str(out), "--maps", "0", "--steps", "5", "--out", str(tmp_path)], capsys)
    assert code == 0, err  # OIPs ascend in the standardised space, whatever the normalisation


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_training_progress_bar_shows_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    from cnnscope.training import loop

    assert loop._progress_bar(10, "epoch 1/1", True) is None  # pytest's captured stderr is no terminal
    monkeypatch.setattr("sys.stderr", _Terminal())
    bar = loop._progress_bar(10, "epoch 1/1", True)
    assert bar is not None
    bar.close()
    monkeypatch.undo()
    out = tmp_path / "model"
    argv = ["train", "--out", str(out), "--train-images", "300", "--test-images", "100", "--epochs", "1"]
    code, stdout, err = run_cli(argv, capsys)  # progress on, but output goes to a log
    assert code == 0
    assert "\r" not in stdout + err and "batch/s" not in stdout + err and "it/s" not in err
    assert err == ""
