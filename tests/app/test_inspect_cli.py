"""The activations / patterns / explain commands: outputs, and every bad input -> one line, exit 2, no files."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnscope.app.cli import main


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors (e.g. a --scale that is not a choice)
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(argv, capsys, out_dir, *phrases):
    code, _, err = run(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert not out_dir.exists() or not any(out_dir.rglob("*")), list(out_dir.rglob("*"))
    return lines[0]


def digit_png(path, mnist, index=0):
    Image.fromarray(255 - mnist.test_x[index]).resize((140, 140)).save(path)  # dark ink on white, 5x
    return path


def huge_png(path, width=7000, height=7000):
    """A small PNG file whose header claims width x height pixels (49 MP > the 40 MP limit)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_activations_one_layer_png_and_sidecar(small_model_dir, tmp_path, capsys):
    out = tmp_path / "act.png"
    code, stdout, err = run(["activations", "--model", small_model_dir, "--layer", "Conv2D_1", "--index", "19",
                             "--out", out], capsys)
    assert code == 0, err
    assert out.exists() and "predicted" in stdout
    with Image.open(out) as image:
        assert image.mode == "RGB" and image.width > 400
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["layer"] == "Conv2D_1" and sidecar["shape"] == [32, 26, 26]
    panel = sidecar["images"][0]
    assert panel["index"] == 19 and panel["split"] == "test" and len(panel["maps"]) == 32
    assert {"map", "min", "max", "mean"} <= set(panel["maps"][0])


def test_activations_all_layers_several_images(small_model_dir, tmp_path, capsys):
    out = tmp_path / "all"
    code, stdout, err = run(["activations", "--model", small_model_dir, "--layer", "all", "--index", "3,4",
                             "--index", "5", "--scale", "standardize", "--cmap", "jet", "--numbers", "--out", out], capsys)
    assert code == 0, err
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 7 and all(name.startswith("test3_test4_test5_") for name in pngs)
    dense = json.loads((out / "test3_test4_test5_Dense_1.json").read_text())
    assert len(dense["images"]) == 3 and len(dense["images"][0]["nodes"]) == 100
    assert dense["scale"] == "standardize" and dense["color_range"] == [-2.0, 2.0]


def test_activations_of_your_own_picture(small_model_dir, mnist, tmp_path, capsys):
    picture = digit_png(tmp_path / "my digit.png", mnist, 0)
    out = tmp_path / "own"
    code, stdout, err = run(["activations", "--model", small_model_dir, "--layer", "Dense_2", "--image", picture,
                             "--out", out], capsys)
    assert code == 0, err
    sidecar = json.loads((out / "my-digit_Dense_2.json").read_text())
    assert sidecar["images"][0]["name"] == "my digit.png" and sidecar["images"][0]["label"] is None
    assert sidecar["images"][0]["predicted"] == int(mnist.test_y[0])


def test_patterns_command(small_model_dir, tmp_path, capsys):
    out = tmp_path / "pat"
    code, stdout, err = run(["patterns", "--model", small_model_dir, "--digits", "4,9", "--count", "30",
                             "--measure", "smd", "--confusable", "3", "--out", out], capsys)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"patterns_4v9_Conv2D_3.png", "separating_4v9_Conv2D_3.png", "patterns_4v9_Dense_1.png",
            "separating_4v9_Dense_1.png", "confusable_4v9.png", "patterns_4v9.json"} == names
    summary = json.loads((out / "patterns_4v9.json").read_text())
    separating = summary["layers"]["Conv2D_3"]["separating"]
    assert summary["layers"]["Conv2D_3"]["measure"] == "smd"
    smds = [abs(row["smd"]) for row in separating]
    assert smds == sorted(smds, reverse=True) and smds[0] > 1.0
    assert len(summary["indices"]["4"]) == 30 and len(summary["most_confusable"]["9"]) == 3
    assert "Conv2D_3: best separating maps" in stdout


def test_explain_command(small_model_dir, mnist, tmp_path, capsys):
    out = tmp_path / "why.png"
    code, stdout, err = run(["explain", "--model", small_model_dir, "--index", "0", "--method", "saliency,gradcam",
                             "--layer", "Conv2D_3", "--target", "3", "--out", out], capsys)
    assert code == 0, err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    entry = sidecar["images"][0]
    assert entry["target"] == 3 and set(entry["methods"]) == {"saliency", "gradcam"}
    assert np.asarray(entry["methods"]["saliency"]["map"]).shape == (28, 28)
    assert sidecar["method_titles"]["gradcam"] == "Grad-CAM (Conv2D_3)"


@pytest.mark.parametrize("argv, phrases", [
    (["activations", "--layer", "Conv9", "--index", "0"], ["Conv9", "Conv2D_1, Max_Pool_1", "Dense_2"]),
    (["activations", "--index", "10000"], ["10000", "0..9999"]),
    (["activations", "--index", "60000", "--set", "train"], ["60000", "0..59999"]),
    (["activations", "--index", "x1"], ["'x1'"]),
    (["activations"], ["--index"]),
    (["activations", "--index", "0", "--scale", "log"], ["log"]),
    (["activations", "--index", "0", "--cmap", "nope"], ["nope"]),
    (["activations", "--index", "0", "--columns", "0"], ["--columns"]),
    (["activations", "--index", ",".join(["1"] * 13)], ["at most 12"]),
    (["patterns", "--digits", "4,4"], ["4 twice"]),
    (["patterns", "--digits", "4,10"], ["'10'", "0..9"]),
    (["patterns", "--digits", "four,9"], ["'four'"]),
    (["patterns", "--digits", "4"], ["two digits"]),
    (["patterns", "--count", "5000"], ["5000", "only"]),
    (["patterns", "--count", "0"], ["--count"]),
    (["patterns", "--share", "0.3"], ["share"]),
    (["patterns", "--layer", "Dense_9"], ["Dense_9", "valid layers"]),
    (["explain", "--index", "0", "--method", "lime"], ["lime", "saliency"]),
    (["explain", "--index", "0", "--layer", "Dense_1"], ["Dense_1", "Conv2D_1"]),
    (["explain", "--index", "0", "--target", "12"], ["12", "0..9"]),
    (["explain", "--index", "99999"], ["0..9999"]),
])
def test_bad_input_one_line_exit_2_no_files(argv, phrases, small_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert_user_error(argv + ["--model", small_model_dir, "--out", out], capsys, out, *phrases)


def test_bad_image_files(small_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    cases = [
        (tmp_path / "missing.png", ["does not exist"]),
        (empty, ["empty"]),
        (text, ["not a readable image"]),
        (blank, ["no digit"]),
        (huge_png(tmp_path / "huge.png"), ["7000x7000", "limit is 40 megapixels"]),
    ]
    for command in ("activations", "explain"):
        for path, phrases in cases:
            assert_user_error([command, "--model", small_model_dir, "--image", path, "--out", out], capsys, out, *phrases)


def test_out_must_be_a_folder_or_png(small_model_dir, tmp_path, capsys):
    out = tmp_path / "pic.jpg"
    assert_user_error(["activations", "--model", small_model_dir, "--index", "0", "--out", out], capsys, out, ".png")
    assert not out.exists()
    taken = tmp_path / "taken"
    taken.write_text("a file")
    code, _, err = run(["patterns", "--model", small_model_dir, "--out", taken], capsys)
    assert code == 2 and "is a file" in err and taken.read_text() == "a file"
