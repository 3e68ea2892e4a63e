"""`cnnscope oip` with the methods of issue 16: --robust, --diverse, --evaluate's quality report and
--examples in the picture and the JSON."""

from __future__ import annotations

import json

from PIL import Image

from helpers import assert_one_line_error, run_cli


def test_robust_diverse_and_quality_report(small_model_dir, mnist, tmp_path, capsys):
    out = tmp_path / "q.png"
    code, stdout, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "3,11", "--steps", "8", "--quiet",
                                 "--robust", "--diverse", "2", "--evaluate", "--out", str(out)], capsys)
    assert code == 0, err
    body = json.loads(out.with_suffix(".json").read_text())
    assert body["settings"]["shift"] == 0.07 and body["settings"]["rotate"] == 5.0
    assert body["diverse"] == 2 and body["diversity"]["layer"] == "Conv2D_2"
    target = body["targets"][1]
    assert len(target["starts"]) == 2 and "spread" in target["quality"]
    assert len(target["examples"]["top"]) == 9 and "middle" not in target["examples"]
    assert abs(target["examples"]["top"][0]["value"] - target["dataset_max"]) < 1e-4 * target["dataset_max"]
    assert target["examples"]["top"][0]["index"] == target["dataset_argmax"]
    assert {"majority_success_rate", "median_natural_path", "median_outside"} <= set(body["quality_summary"])
    assert "quality: " in stdout and "majority success rate" in stdout
    assert (tmp_path / "q_gallery.png").exists()


def test_examples_in_the_picture(small_model_dir, mnist, tmp_path, capsys):
    plain, shown = tmp_path / "p.png", tmp_path / "e.png"
    for out, extra in ((plain, ["--evaluate"]), (shown, ["--examples-spread"])):
        code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "11", "--steps", "4", "--quiet",
                                "--shift", "0.1", "--out", str(out), *extra], capsys)
        assert code == 0, err
    body = json.loads(shown.with_suffix(".json").read_text())
    assert set(body["targets"][0]["examples"]) == {"top", "middle", "bottom"}
    assert body["settings"]["shift"] == 0.1 and body["settings"]["zoom"] == 0.0
    with Image.open(plain) as a, Image.open(shown) as b:
        assert b.size[0] > a.size[0] + 3 * 3 * 28  # three 3 x 3 grids of test images beside the tile
        assert b.size[1] == a.size[1]
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "11", "--diverse", "1",
                            "--out", str(tmp_path / "x.png")], capsys)
    assert_one_line_error(code, err, "--diverse needs at least 2")
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "11", "--zoom", "2",
                            "--out", str(tmp_path / "x.png")], capsys)
    assert_one_line_error(code, err, "zoom must be below 1")
