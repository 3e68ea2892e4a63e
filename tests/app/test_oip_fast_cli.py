"""`cnnscope oip --fast`: the time-to-quality preset from the command line."""

from __future__ import annotations

import json

from helpers import assert_one_line_error, run_cli


def test_fast_uses_the_preset_and_keeps_a_changed_step_count(small_model_dir, tmp_path, capsys):
    out = tmp_path / "fast.png"
    code, stdout, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "0-3", "--fast", "--steps", "12",
                                 "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    body = json.loads(out.with_suffix(".json").read_text())
    settings = body["settings"]
    assert (settings["steps"], settings["epsilon"], settings["epsilon_end"], settings["early_stop"],
            settings["tolerance"], settings["race"]) == (12, 0.8, 0.01, True, 1e-4, 2)
    assert (body["precursor"], body["restarts"]) == (0, 2)  # two starts race


def test_fast_gallery_keeps_every_start_to_the_end(small_model_dir, tmp_path, capsys):
    out = tmp_path / "gallery.png"
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "3", "--fast", "--steps", "15",
                            "--starts", "3", "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    body = json.loads(out.with_suffix(".json").read_text())
    assert (body["settings"]["race"], body["restarts"]) == (0, 3)
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "3", "--steps", "15", "--restarts",
                            "3", "--race", "5", "--quiet", "--out", str(tmp_path / "raced.png")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "raced.json").read_text())["settings"]["race"] == 5


def test_a_negative_race_is_a_one_line_error(small_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "0", "--fast", "--race", "-1",
                            "--quiet", "--out", str(tmp_path / "x.png")], capsys)
    assert_one_line_error(code, err, "race")
    assert not list(tmp_path.iterdir())


def test_fast_with_another_rule_is_a_one_line_error(small_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "0", "--fast", "--rule", "adam",
                            "--quiet", "--out", str(tmp_path / "x.png")], capsys)
    assert_one_line_error(code, err, "--fast uses the normalized rule")
    assert not list(tmp_path.iterdir())
