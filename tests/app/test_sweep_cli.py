"""`cnnscope sweep` without starting Ray: the grid options, one-line errors, the install hint."""

from __future__ import annotations

import json
import sys

from cnnscope.app.cli import main


def test_dry_run_lists_the_grid_from_options_and_a_file(tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"seed": [0, 1], "recipe": ["default"]}))
    assert main(["sweep", "--grid-file", str(grid), "--grid", "lr=1e-3,2e-3", "--grid", "epochs=1", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["seed-0_lr-0.001", "seed-0_lr-0.002", "seed-1_lr-0.001",
                                                      "seed-1_lr-0.002"]
    assert "adam lr 0.002" in lines[1] and "1 epochs" in lines[1]


def test_bad_grids_are_one_line(tmp_path, capsys):
    for argv, expected in (
        (["--grid", "sede=0,1"], "unknown training option 'sede' in the grid"),
        (["--grid", "seed"], "grid entry must look like seed=0,1,2"),
        (["--grid", "seed=0,x"], "grid option 'seed' must be a whole number, got 'x'"),
        (["--grid", "penalize-conv=maybe"], "takes true or false"),
        ([], "no grid given"),
    ):
        assert main(["sweep", *argv, "--out", str(tmp_path / "s")]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and expected in error, error
    assert not (tmp_path / "s").exists()


def test_without_ray_it_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["sweep", "--grid", "seed=0,1", "--out", str(tmp_path / "s")]) == 2
    assert "pip install 'cnnscope[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
