"""The main job end to end, in quick mode, on the small real-data model."""

import re

import pytest

from cnnscope.app.cli import main
from cnnscope.app.report import Figure, ReportContext, Section, render_html


def test_report_html_lists_sections_figures_and_facts(tmp_path):
    ctx = ReportContext(model=None, config={}, mnist=None, model_dir=tmp_path, folder=tmp_path)
    page = render_html([Section("Training", "intro <b>", [Figure("a.png", "curves & more")], {"acc": "99.4%"})], ctx)
    assert "<h2>Training</h2>" in page
    assert "src='a.png'" in page and "curves &amp; more" in page
    assert "intro &lt;b&gt;" in page  # escaped
    assert "<th>acc</th><td>99.4%</td>" in page


@pytest.mark.slow
def test_demo_quick_writes_a_report_whose_images_all_exist(small_model_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--model", str(small_model_dir), "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    index = out / "index.html"
    assert str(index.resolve()) in printed
    page = index.read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) >= 5
    for name in images:
        assert (out / name).stat().st_size > 500, name
    for title in ("Training", "Evaluation", "Activations", "OIP", "OIP methods compared", "Dream"):
        assert title.lower() in page.lower(), title


def test_demo_with_a_missing_model_is_a_one_line_error(tmp_path, capsys):
    code = main(["demo", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no checkpoint" in err
    assert not (tmp_path / "r").exists()
