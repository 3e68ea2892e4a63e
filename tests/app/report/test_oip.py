"""The OIP section of the demo report: dataset examples and the quality report."""

from __future__ import annotations

import json

import pytest

from cnnscope.app.report import ReportContext
from cnnscope.app.report.oip import report_section


@pytest.mark.slow
def test_report_section_quick_has_examples_and_quality(small_model, mnist, tmp_path):
    ctx = ReportContext(model=small_model, config={}, mnist=mnist, model_dir=tmp_path, folder=tmp_path, quick=True)
    section = report_section(ctx)
    paths = [figure.path for figure in section.figures]
    assert "oip_zoo_examples.png" in paths and all((tmp_path / path).exists() for path in paths)
    assert "majority success, articles' settings" in section.facts
    assert "median natural-path similarity, articles' settings" in section.facts
    body = json.loads((tmp_path / "oip_deep_articles.json").read_text())
    assert len(body["targets"]) == 16 and len(body["targets"][0]["examples"]["top"]) == 9
    assert "natural_path_mean" in body["targets"][0]["quality"] and "median_ratio" in body["quality_summary"]
