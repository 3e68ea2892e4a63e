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
            settings["tolerance"]) == (12, 0.5, 0.01, True, 1e-4)
    assert body["precursor"] == 0


def test_fast_with_another_rule_is_a_one_line_error(small_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "0", "--fast", "--rule", "adam",
                            "--quiet", "--out", str(tmp_path / "x.png")], capsys)
    assert_one_line_error(code, err, "--fast uses the normalized rule")
    assert not list(tmp_path.iterdir())
