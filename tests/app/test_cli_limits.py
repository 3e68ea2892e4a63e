"""Unbounded arguments on the command line: ranges, lists, nodes, sizes and counts are checked
against their stated limits before anything is expanded or allocated (one line, exit code 2,
no file written, and at once: a range is never expanded to find out it is too long)."""

from __future__ import annotations

import pytest

from helpers import assert_one_line_error, run_cli

HUGE_LIST = "1," * 6000 + "1"

CASES = [
    (["oip", "--maps", "0-999999999"], "map 999999999 out of range: valid maps are 0..127"),
    (["oip", "--maps", "0-" + "9" * 5000], "is not a number or range"),
    (["oip", "--maps", HUGE_LIST], "the limit is 10000"),
    (["oip", "--logit", "0-999999999"], "logit 999999999 out of range"),
    (["oip", "--logit", "-5"], "out of range"),
    (["oip", "--node", "99999999999:1,1"], "99999999999"),
    (["oip", "--node", "1:99999,99999"], "99999"),
    (["oip", "--node", "1:1e400,1"], "node y"),
    (["oip", "--node", HUGE_LIST], "the limit is 10000"),
    (["oip", "--size", "100000"], "--size: size must be at most 512"),
    (["oip", "--size", "1e300"], "size must be at most 512"),
    (["oip", "--restarts", "1e9"], "--restarts: restarts must be at most 64"),
    (["oip", "--starts", "100000"], "starts must be at most 64"),
    (["oip", "--precursor", "1e9"], "precursor must be at most 1024"),
    (["oip", "--columns", "1e9"], "columns must be at most 256"),
    (["oip", "--scales", HUGE_LIST], "the limit is 10000"),
    (["activations", "--index", "0", "--columns", "100000"], "--columns: columns must be at most 256"),
    (["activations", "--index", HUGE_LIST], "the limit is 10000"),
    (["activations", "--index", "9" * 200], "is not a whole number"),
    (["patterns", "--digits", HUGE_LIST], "the limit is 10000"),
    (["dream", "--sample", "flower", "--layers", "Conv2D_3:1," * 2000], "the limit is 10000"),
    (["explain", "--index", "0", "--method", "saliency," * 2000], "the limit is 10000"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[f"{a[0]} {a[1]} {a[2][:12]}" for a, _ in CASES])
def test_an_unbounded_argument_is_refused_before_it_is_expanded(argv, message, small_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    target = out if argv[0] == "patterns" else out / "x.png"
    code, _, err = run_cli([*argv, "--model", str(small_model_dir), "--out", str(target)], capsys)
    assert_one_line_error(code, err, message)
    assert not out.exists()


@pytest.mark.parametrize("flag, text", ids=["conv", "dense", "pools"], argvalues=[("--conv", "32:3," * 3000), ("--dense", "10," * 5001),
                                        ("--pools", "2," * 5001)])
def test_a_layout_text_over_the_limit_is_refused(flag, text, tmp_path, capsys):
    code, _, err = run_cli(["train", flag, text, "--out", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, "the limit is 10000")
    assert not (tmp_path / "run").exists()
