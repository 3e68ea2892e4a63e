"""The "What each layer does" section of the demo report."""

from __future__ import annotations

import pytest

from cnnscope.app.report import ReportContext
from cnnscope.app.report.inspection import report_section


@pytest.mark.slow
def test_report_section_quick(small_model, mnist, tmp_path):
    ctx = ReportContext(model=small_model, config={}, mnist=mnist, model_dir=tmp_path, folder=tmp_path, quick=True)
    section = report_section(ctx)
    paths = [figure.path for figure in section.figures]
    assert len(paths) == 7 + 4 + 1 + 2  # every layer but Flatten, 2 x (patterns + separating), confusable, 2 explanations
    assert all((tmp_path / path).exists() for path in paths)
    assert all(figure.caption for figure in section.figures)
    assert "Conv2D_3: best separating map" in section.facts
