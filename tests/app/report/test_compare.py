"""The demo report's comparison section (only with `demo --compare OTHER`)."""

from __future__ import annotations

import torch

from cnnscope.app.cli import main
from cnnscope.app.report.compare import report_section
from cnnscope.app.report.page import ReportContext
from cnnscope.nn.checkpoint import load_checkpoint, save_checkpoint
from helpers import permute_conv2d_3


def context(small_model_dir, folder, compare=None) -> ReportContext:
    model, config = load_checkpoint(small_model_dir)
    return ReportContext(model=model, config=config, mnist=None, model_dir=small_model_dir, folder=folder,
                         quick=True, progress=False, compare=compare)


def test_the_section_compares_with_the_other_model(small_model_dir, tmp_path):
    model, config = load_checkpoint(small_model_dir)
    permute_conv2d_3(model, torch.randperm(128, generator=torch.Generator().manual_seed(0)))
    save_checkpoint(model, tmp_path / "other", data=config["data"])
    section = report_section(context(small_model_dir, tmp_path / "report", tmp_path / "other"))
    assert section.title == "Comparison with another run"
    paths = [figure.path for figure in section.figures]
    assert paths == ["compare/cka_diagonal.png", "compare/cka.png", "compare/matches.png", "compare/pairs_Conv2D_3.png"]
    assert all((tmp_path / "report" / path).exists() for path in paths)
    assert "Conv2D_3 1.000" in section.facts["same-layer CKA"]
    assert section.facts["Dense_1 matching"].startswith("median matched correlation 1.000")


def test_no_other_model_no_section_and_a_bad_one_is_one_line(small_model_dir, tmp_path, capsys):
    assert report_section(context(small_model_dir, tmp_path / "report")) is None
    assert main(["demo", "--model", str(small_model_dir), "--compare", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no checkpoint at" in error
