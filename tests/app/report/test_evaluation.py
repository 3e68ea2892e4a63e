"""The evaluation section of the demo report."""

from __future__ import annotations

from cnnscope.app.report import ReportContext
from cnnscope.app.report.evaluation import report_section


def test_report_section_writes_confusion_and_mistakes(small_model, mnist, tmp_path):
    ctx = ReportContext(model=small_model, config={}, mnist=mnist, model_dir=tmp_path, folder=tmp_path / "r", quick=True)
    section = report_section(ctx)
    assert [f.path for f in section.figures] == ["confusion_matrix.png", "confident_mistakes.png"]
    assert all((tmp_path / "r" / f.path).exists() for f in section.figures)
    assert "2000 images" in section.facts["test accuracy"]
