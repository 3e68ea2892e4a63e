"""`cnnscope train` through the CLI: every bad input is one line, exit code 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def tampered_npz(mnist, tmp_path_factory):
    images = mnist.test_x.copy()
    images[0, 10, 10] = 255 - images[0, 10, 10]
    path = tmp_path_factory.mktemp("tampered") / "mnist.npz"
    np.savez(path, x_train=mnist.train_x, y_train=mnist.train_y, x_test=images, y_test=mnist.test_y)
    return path


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "adagrad"], "unknown optimizer 'adagrad'; allowed: adam, rmsprop, nadam, adamax, sgd"),
    (["--schedule", "cosine"], "unknown schedule 'cosine'; allowed: onecycle, power, exponential, none"),
    (["--recipe", "fastest"], "unknown recipe 'fastest'; allowed: default, seed, best"),
    (["--augment", "flip"], "unknown augmentation 'flip'"),
    (["--split", "random"], "unknown split 'random'"),
    (["--epochs", "0"], "epochs must be a whole number >= 1, got 0"),
    (["--epochs", "-3"], "epochs must be a whole number >= 1, got -3"),
    (["--batch-size", "0"], "batch size must be a whole number >= 1, got 0"),
    (["--batch-size", "-64"], "batch size must be"),
    (["--epochs", "many"], "invalid int value: 'many'"),
    (["--lr", "-0.1"], "learning rate must be > 0"),
    (["--momentum", "1"], "momentum must be in [0, 1)"),
    (["--threads", "0"], "threads must be a whole number >= 1, got 0"),
    (["--data", "/nonexistent/mnist.npz"], "data path /nonexistent/mnist.npz does not exist"),
    (["--resume", "--reset"], "--resume: resume and reset exclude each other"),
])
def test_bad_train_options(args, message, tmp_path, capsys):
    out = tmp_path / "model"
    code, _, err = run_cli(["train", "--out", str(out), "--no-progress", *args], capsys)
    assert_one_line_error(code, err, message)
    assert not out.exists()


def test_train_writes_the_checkpoint_the_curves_and_the_metrics(tmp_path, capsys):
    out = tmp_path / "model"
    code, stdout, _ = run_cli(["train", "--out", str(out), "--epochs", "1", "--train-images", "300",
                               "--test-images", "200", "--no-progress"], capsys)
    assert code == 0 and "done: test accuracy" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "curves.png", "initial.safetensors",
                                                     "metrics.csv", "model.safetensors", "train_state.safetensors"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    code, _, err = run_cli(["train", "--out", str(tmp_path / "taken"), "--no-progress"], capsys)
    assert_one_line_error(code, err, "is not a folder")
    code, _, err = run_cli(["train", "--out", str(tmp_path / "taken" / "sub"), "--no-progress"], capsys)
    assert_one_line_error(code, err, "is not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_checksum_mismatch_of_the_data_is_refused(tampered_npz, tmp_path, capsys):
    out = tmp_path / "model"
    code, _, err = run_cli(["train", "--out", str(out), "--data", str(tampered_npz), "--no-progress"], capsys)
    assert_one_line_error(code, err, "checksum mismatch")
    assert not out.exists()


def test_unreadable_data_file_is_refused(tmp_path, capsys):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"garbage")
    code, _, err = run_cli(["train", "--out", str(tmp_path / "m"), "--data", str(bad)], capsys)
    assert_one_line_error(code, err, "not a readable Keras mnist.npz")
    assert not (tmp_path / "m").exists()


def test_resume_without_a_run_or_with_a_corrupt_state(small_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["train", "--out", str(tmp_path / "none"), "--resume"], capsys)
    assert_one_line_error(code, err, "nothing to resume")
    assert not (tmp_path / "none").exists()
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "train_state.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": broken json")
    code, _, err = run_cli(["train", "--out", str(folder), "--resume"], capsys)
    assert_one_line_error(code, err, "corrupt")
    assert sorted(p.name for p in folder.iterdir()) == ["train_state.safetensors"]
    code, _, err = run_cli(["train", "--out", str(folder), "--resume", "--lr", "0.1"], capsys)
    assert_one_line_error(code, err, "only --epochs may change (got --lr)")


@pytest.mark.parametrize("command", [["summary"], ["predict", "--index", "1"], ["evaluate", "--out", "{tmp}/ev"]])
def test_corrupt_or_foreign_checkpoints_are_refused(small_model_dir, tmp_path, capsys, command):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("config.json", "model.safetensors"):
        (corrupt / name).write_bytes((small_model_dir / name).read_bytes())
    (corrupt / "model.safetensors").write_bytes((small_model_dir / "model.safetensors").read_bytes()[:5000])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model": "resnet"}))
    for folder, message in ((corrupt, "corrupt"), (foreign, "not a cnnscope checkpoint")):
        argv = [a.format(tmp=tmp_path) for a in command] + ["--model", str(folder)]
        code, _, err = run_cli(argv, capsys)
        assert_one_line_error(code, err, message)
    assert not (tmp_path / "ev").exists()


def test_no_default_model_is_explained(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNSCOPE_HOME", str(tmp_path))
    code, _, err = run_cli(["predict", "--index", "0"], capsys)
    assert_one_line_error(code, err, "run `cnnscope train`")


def test_summary_of_the_untrained_network(capsys):
    code, out, _ = run_cli(["summary", "--untrained"], capsys)
    assert code == 0 and "Total params: 208,982" in out and "Dense_1 (Dense)" in out


@pytest.mark.slow
def test_train_resume_predict_evaluate_end_to_end(tmp_path, capsys):
    out = tmp_path / "model"
    quick = ["--train-images", "2000", "--test-images", "1000", "--no-progress"]
    code, stdout, _ = run_cli(["train", "--out", str(out), "--epochs", "2", "--batch-size", "64", *quick], capsys)
    assert code == 0 and "epoch   2/2" in stdout and "done: test accuracy" in stdout
    code, stdout, _ = run_cli(["train", "--out", str(out), "--resume", "--epochs", "3", "--no-progress"], capsys)
    assert code == 0 and "resuming at epoch 2 of 3" in stdout and "epoch   3/3" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["epoch"] == 3 and config["complete"] and config["metrics"]["test_accuracy"] > 0.9
    assert len((out / "metrics.csv").read_text().splitlines()) == 4
    code, stdout, _ = run_cli(["summary", "--model", str(out)], capsys)
    assert code == 0 and "Total params: 208,982" in stdout and "3 epochs" in stdout
    code, stdout, _ = run_cli(["predict", "--model", str(out), "--index", "0", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["predicted"] == 7
    code, stdout, _ = run_cli(["train", "--out", str(out), "--optimizer", "rmsprop", "--momentum", "0.8",
                               "--schedule", "power", "--l2", "1e-3", "--reset", "--epochs", "1", *quick], capsys)
    assert code == 0 and "starting from the initial weights" in stdout
