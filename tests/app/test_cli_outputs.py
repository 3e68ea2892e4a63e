"""Every writing command against hostile outputs: a full disk (found before the work, or only at
the last file), a read-only file system, an output whose parent is a file, an output that is a
folder. Each ends in one line naming the path and the cause, exit code 2, no temporary file,
and the earlier good files byte for byte as they were.

The disks are real: a tiny tmpfs (`disks.tiny_disk`; the tests skip where mounting is not allowed).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from disks import fill_disk, make_read_only, snapshot, temp_files, tiny_disk
from helpers import assert_one_line_error, run_cli

KERAS_FILE = Path(__file__).parents[1] / "fixtures" / "keras" / "articles_k2.h5"


@pytest.fixture(scope="module")
def inputs(small_model_dir, mnist, tmp_path_factory):
    """Model folders (two copies for compare), an ONNX file and a photo for the commands."""
    from cnnscope.nn.checkpoint import load_checkpoint

    folder = tmp_path_factory.mktemp("writer_inputs")
    second = shutil.copytree(small_model_dir, folder / "second_model")
    model, _ = load_checkpoint(small_model_dir)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(2, 1, 28, 28),), str(folder / "model.onnx"), dynamo=False,
                          input_names=["image"], output_names=["output"], dynamic_axes={"image": {0: "batch"}})
    photo = folder / "photo.png"
    Image.fromarray(mnist.test_x[0]).resize((56, 56)).save(photo)
    return {"model": str(small_model_dir), "second": str(second), "onnx": str(folder / "model.onnx"),
            "photo": str(photo)}


# name -> (argv for output base folder D and variant S, the output a user names)
def commands(inputs: dict) -> dict:
    model = inputs["model"]
    return {
        "train": lambda d, s: ["train", "--out", str(d / f"run{s}"), "--epochs", "1", "--train-images", "300",
                               "--test-images", "100", "--batch-size", "100", "--no-progress"],
        "import-keras": lambda d, s: ["import-keras", str(KERAS_FILE), "--out", str(d / f"keras{s}")],
        "import-onnx": lambda d, s: ["import-onnx", inputs["onnx"], "--out", str(d / f"onnx{s}")],
        "oip": lambda d, s: ["oip", "--model", model, "--layer", "Conv2D_3", "--maps", "0-1", "--steps", "4",
                             "--snapshots", "2", "--seed", str(s), "--quiet", "--out", str(d / "oip.png")],
        "dream": lambda d, s: ["dream", inputs["photo"], "--model", model, "--steps", "2", "--rounds", "1",
                               "--epsilon", str(0.01 + s / 100), "--quiet", "--out", str(d / "dream.png")],
        "activations": lambda d, s: ["activations", "--model", model, "--index", str(s), "--layer", "Conv2D_1",
                                     "--out", str(d / "activations.png")],
        "explain": lambda d, s: ["explain", "--model", model, "--index", str(s), "--method", "saliency",
                                 "--out", str(d / "explain.png")],
        "patterns": lambda d, s: ["patterns", "--model", model, "--count", str(20 + s), "--layer", "Conv2D_3",
                                  "--confusable", "2", "--out", str(d / "patterns")],
        "evaluate": lambda d, s: ["evaluate", "--model", model, "--mistakes", str(4 + s), "--out", str(d / "evaluation")],
        "predict": lambda d, s: ["predict", "--model", model, "--index", str(s), "--save-input", str(d / "input.png")],
        "compare": lambda d, s: ["compare", model, inputs["second"], "--images", str(100 + 10 * s), "--pictures", "none",
                                 "--threads", "1", "--out", str(d / "compare")],
        "demo": lambda d, s: ["demo", "--model", model, "--quick", "--out", str(d / "report")],
        "sweep": lambda d, s: ["sweep", "--grid", "seed=0,1", "--out", str(d / "sweep")],
    }


ALL = ["train", "import-keras", "import-onnx", "oip", "dream", "activations", "explain", "patterns", "evaluate",
       "predict", "compare", "demo", "sweep"]
WORKING = [name for name in ALL if name not in ("demo", "sweep")]  # run to their last file in these tests

# a file each command writes, made a folder in the "output is a folder" test (import: with --force)
FIRST_FILE = {"train": "run0/metrics.csv", "import-keras": "keras0/config.json", "import-onnx": "onnx0/config.json",
              "oip": "oip.json", "dream": "dream.png", "activations": "activations.png", "explain": "explain.png",
              "patterns": "patterns/patterns_4v9.json", "evaluate": "evaluation/confusion.png",
              "predict": "input.png", "compare": "compare/compare.json"}


@pytest.fixture()
def disk(tmp_path):
    with tiny_disk(tmp_path / "disk", "8m") as folder:
        yield folder


def assert_refused(code, err, disk: Path, *words: str) -> None:
    assert_one_line_error(code, err, words[0])
    for word in words[1:]:
        assert word in err, err
    assert temp_files(disk) == []


@pytest.mark.parametrize("name", ALL)
def test_a_full_disk_is_refused_before_the_work_starts(name, inputs, disk, capsys):
    fill_disk(disk)
    code, out, err = run_cli(commands(inputs)[name](disk, 0), capsys)
    assert_refused(code, err, disk, "No space left on device", str(disk))
    assert snapshot(disk) == {}


@pytest.mark.parametrize("name", ALL)
def test_a_read_only_output_is_refused_before_the_work_starts(name, inputs, disk, capsys):
    make_read_only(disk)
    code, out, err = run_cli(commands(inputs)[name](disk, 0), capsys)
    assert_refused(code, err, disk, "Read-only file system", str(disk))


@pytest.mark.parametrize("name", ALL)
def test_an_output_whose_parent_is_a_file_is_refused(name, inputs, tmp_path, capsys):
    (tmp_path / "afile").write_text("keep")
    code, out, err = run_cli(commands(inputs)[name](tmp_path / "afile", 0), capsys)
    assert_refused(code, err, tmp_path, "is not a folder", str(tmp_path / "afile"))
    assert (tmp_path / "afile").read_text() == "keep" and [p.name for p in tmp_path.iterdir()] == ["afile"]


@pytest.mark.parametrize("name", WORKING)
def test_an_output_that_is_a_folder_is_refused(name, inputs, tmp_path, capsys):
    folder = tmp_path / FIRST_FILE[name]
    folder.mkdir(parents=True)
    (folder / "inside.txt").write_text("keep")
    argv = commands(inputs)[name](tmp_path, 0) + (["--force"] if name.startswith("import") else [])
    code, out, err = run_cli(argv, capsys)
    assert_refused(code, err, tmp_path, "is a folder", str(folder))
    assert (folder / "inside.txt").read_text() == "keep"


@pytest.mark.parametrize("name", WORKING)
def test_a_disk_that_fills_up_during_the_writes_keeps_the_earlier_files(name, inputs, disk, capsys):
    argv = commands(inputs)[name]
    code, out, err = run_cli(argv(disk, 0), capsys)  # an earlier good run
    assert code == 0, err
    before = snapshot(disk)
    fill_disk(disk, keep=4096)  # the output check's one-byte probe fits, the outputs do not
    code, out, err = run_cli(argv(disk, 1), capsys)  # other results into the same files (or a new folder)
    assert_refused(code, err, disk, "No space left on device", f"cannot write {disk}/")  # a file, not the probe
    assert snapshot(disk) == before  # nothing replaced, nothing half-written, no first pictures left behind
