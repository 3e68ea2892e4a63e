"""`cnnscope dream`: outputs, sidecar, and every user error (one line, exit 2, no files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnscope.app.cli import main
from helpers import png_with_size


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        code = main(["dream", *args])
    except SystemExit as exc:  # argparse's own errors (bad choice, not a number)
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err



@pytest.fixture()
def photo_file(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:60, 0:80]
    rgb = np.stack([xx * 3, yy * 4, 255 - xx * 3], axis=2) + rng.integers(0, 30, (60, 80, 3))
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return path


def test_downscale_writes_result_panel_gif_and_sidecar(small_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["--sample", "flower", "--max-side", "96", "--model", str(small_model_dir),
                                 "--steps", "8", "--rounds", "3", "--gif", "--out", str(out)], capsys)
    assert code == 0, err
    assert "note: sample photo 'flower' is 640x427 pixels; resized to 96x64" in stdout
    names = sorted(p.name for p in out.iterdir())
    stem = "flower_Conv2D_3-56_downscale"
    assert names == sorted([f"{stem}.png", f"{stem}_panel.png", f"{stem}_rounds.gif", f"{stem}.json"])
    result = Image.open(out / f"{stem}.png")
    assert result.size == (96, 64) and result.mode == "RGB"
    gif = Image.open(out / f"{stem}_rounds.gif")
    assert gif.n_frames == 4  # the photo, then three rounds
    sidecar = json.loads((out / f"{stem}.json").read_text())
    assert sidecar["settings"]["mode"] == "downscale" and sidecar["settings"]["steps"] == 8
    assert sidecar["settings"]["rounds"] == 3 and sidecar["settings"]["epsilon"] == 0.01
    assert sidecar["objective"] == "Conv2D_3:56"
    assert len(sidecar["values"]) == 4 and len(sidecar["stages"]) == 3
    assert sidecar["photo_size"] == [64, 96] and sidecar["original_size"] == [427, 640]
    assert sidecar["seconds"] > 0 and sidecar["outputs"]["panel"] == f"{stem}_panel.png"


def test_octaves_to_a_png_path_same_seed_same_image(small_model_dir, photo_file, tmp_path, capsys):
    args = [str(photo_file), "--mode", "octaves", "--px", "1", "--octaves", "2", "--steps", "5",
            "--layers", "Conv2D_2:1.0,Conv2D_3:2.0", "--model", str(small_model_dir)]
    code, stdout, err = run_cli([*args, "--out", str(tmp_path / "a.png")], capsys)
    assert code == 0, err
    assert "octave 2 (80x60)" in stdout
    assert sorted(p.name for p in tmp_path.glob("a*")) == ["a.json", "a.png", "a_panel.png"]
    sidecar = json.loads((tmp_path / "a.json").read_text())
    assert sidecar["objective"] == "1 * Conv2D_2 + 2 * Conv2D_3"
    assert [stage["size"] for stage in sidecar["stages"]] == [[43, 57], [60, 80]]
    assert run_cli([*args, "--out", str(tmp_path / "b.png")], capsys)[0] == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


def test_native_tiles_and_gray(small_model_dir, photo_file, tmp_path, capsys):
    code, stdout, err = run_cli([str(photo_file), "--mode", "native", "--tile", "28", "--rounds", "2", "--steps", "2",
                                 "--gray", "--map", "Conv2D_2:3", "--model", str(small_model_dir),
                                 "--out", str(tmp_path / "n.png")], capsys)
    assert code == 0, err
    assert "tiles" in stdout
    assert Image.open(tmp_path / "n.png").mode == "L"
    assert json.loads((tmp_path / "n.json").read_text())["tile"] == 28


def _bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not a picture at all")
    (tmp_path / "zero.png").write_bytes(png_with_size(0, 0))
    (tmp_path / "huge.png").write_bytes(png_with_size(20000, 20000))
    (tmp_path / "big.png").write_bytes(png_with_size(9000, 5000))
    (tmp_path / "cut.png").write_bytes(png_with_size(300, 200))  # header only: truncated
    Image.new("L", (20, 20)).save(tmp_path / "tiny.png")
    (tmp_path / "folder").mkdir()


BAD_ARGS = [
    (["{tmp}/missing.png"], "does not exist"),
    (["{tmp}/empty.png"], "empty"),
    (["{tmp}/notes.png"], "not a readable image"),
    (["{tmp}/zero.png"], "not a readable image"),
    (["{tmp}/huge.png"], "too large"),
    (["{tmp}/big.png"], "megapixels"),
    (["{tmp}/cut.png"], "truncated"),
    (["{tmp}/tiny.png"], "at least 28x28"),
    (["{tmp}/folder"], "not a file"),
    ([], "give a photo"),
    (["{photo}", "--sample", "flower"], "give a photo"),
    (["--sample", "rose"], "invalid choice"),
    (["{photo}", "--map", "Conv9:3"], "unknown layer 'Conv9'"),
    (["{photo}", "--map", "Conv2D_3:128"], "map 128 out of range"),
    (["{photo}", "--map", "Conv2D_3"], "must look like LAYER:MAP"),
    (["{photo}", "--map", "Conv2D_3:x"], "whole number"),
    (["{photo}", "--layer", "Dense_9"], "unknown layer 'Dense_9'"),
    (["{photo}", "--layers", "Conv2D_2:heavy"], "must be a number"),
    (["{photo}", "--layer", "Conv2D_2", "--map", "Conv2D_3:1"], "one objective"),
    (["{photo}", "--mode", "octaves", "--layer", "Dense_1"], "Dense_1 is not a conv/pool layer"),
    (["{photo}", "--mode", "native", "--map", "Dense_2:3"], "Dense_2 is not a conv/pool layer"),
    (["{photo}", "--steps", "0"], "--steps must be >= 1"),
    (["{photo}", "--steps", "-3"], "--steps must be >= 1"),
    (["{photo}", "--steps", "many"], "invalid int value"),
    (["{photo}", "--rounds", "0"], "--rounds must be >= 1"),
    (["{photo}", "--octaves", "0"], "--octaves must be >= 1"),
    (["{photo}", "--octaves", "-2"], "--octaves must be >= 1"),
    (["{photo}", "--octave-scale", "1"], "octave scale must be > 1"),
    (["{photo}", "--octave-scale", "0.8"], "octave scale must be > 1"),
    (["{photo}", "--octave-scale", "0"], "octave scale must be > 0"),
    (["{photo}", "--octave-scale", "-1.4"], "octave scale must be > 0"),
    (["{photo}", "--octave-scale", "nan"], "finite"),
    (["{photo}", "--px", "0"], "px must be > 0"),
    (["{photo}", "--px", "-2"], "px must be > 0"),
    (["{photo}", "--px", "0.5"], "must be >= 1"),
    (["{photo}", "--epsilon", "0"], "epsilon must be > 0"),
    (["{photo}", "--epsilon", "-0.1"], "epsilon must be > 0"),
    (["{photo}", "--jitter", "-1"], "jitter must be"),
    (["{photo}", "--width", "-1"], "width must be >= 0"),
    (["{photo}", "--tile", "30"], "multiple of 28"),
    (["{photo}", "--mode", "native", "--tile", "112"], "larger than the photo"),
    (["{photo}", "--mode", "octaves", "--octaves", "4"], "smallest octave would be"),
    (["{photo}", "--max-side", "10"], "at least 28"),
    (["{photo}", "--threads", "-1"], "--threads must be >= 0"),
    (["{photo}", "--mode", "deep"], "invalid choice"),
    (["{photo}", "--out", "{tmp}/result.txt"], "must be a folder or a .png file"),
    (["{photo}", "--model", "{tmp}/no_model"], "no checkpoint"),
]


@pytest.mark.parametrize("args, message", BAD_ARGS, ids=[" ".join(a[1:]) or a[0] if a else "none" for a, _ in BAD_ARGS])
def test_user_errors_are_one_line_exit_2_and_write_nothing(small_model_dir, photo_file, tmp_path, capsys,
                                                           args, message):
    bad = tmp_path / "bad"
    bad.mkdir()
    _bad_files(bad)
    out = tmp_path / "out"
    argv = [a.format(tmp=bad, photo=photo_file) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(small_model_dir)]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cnnscope dream: error: "), err
    assert message in err, err
    assert "Traceback" not in err
    assert not out.exists()
    assert not (bad / "result.txt").exists()
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith(".") or p.suffix in (".gif", ".json")]
    assert leftovers == []
