"""Evaluation: numbers agree with a direct computation; pictures and JSON are written."""

from __future__ import annotations

import json

import numpy as np
import torch

from cnnscope.analysis.evaluation import evaluate, format_report, save_evaluation
from cnnscope.app.cli import main
from cnnscope.data.mnist import to_tensor


def test_accuracy_confusion_and_per_class_agree_with_a_direct_count(small_model, mnist):
    images, labels = mnist.test_x[:3000], mnist.test_y[:3000]
    result = evaluate(small_model, images, labels, batch_size=700)
    with torch.no_grad():
        direct = small_model(to_tensor(images)).argmax(1).numpy()
    assert result.accuracy == (direct == labels).mean()
    assert result.accuracy > 0.9
    matrix = result.confusion()
    assert matrix.sum() == 3000 and np.trace(matrix) == (direct == labels).sum()
    assert matrix.sum(axis=1).tolist() == np.bincount(labels, minlength=10).tolist()
    for k in range(10):
        mine = labels == k
        assert result.per_class_accuracy()[k] == (direct[mine] == k).mean()
    assert np.allclose(result.probabilities.sum(axis=1), 1.0)


def test_most_confident_mistakes_are_wrong_and_sorted(small_model, mnist):
    result = evaluate(small_model, mnist.test_x[:3000], mnist.test_y[:3000])
    mistakes = result.most_confident_mistakes(10)
    assert len(mistakes) == 10
    assert all(m.true != m.predicted and m.true == mnist.test_y[m.index] for m in mistakes)
    confidences = [m.probability for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[0] == result.probabilities[result.predictions != result.labels].max()
    assert f"#{mistakes[0].index}" in format_report(result)


def test_save_evaluation_writes_pictures_and_json(small_model, mnist, tmp_path):
    images, labels = mnist.test_x[:1000], mnist.test_y[:1000]
    result = evaluate(small_model, images, labels)
    paths = save_evaluation(result, images, tmp_path / "ev", mistakes=12)
    body = json.loads(paths["json"].read_text())
    assert body["accuracy"] == result.accuracy and len(body["most_confident_mistakes"]) == 12
    assert body["confusion"] == result.confusion().tolist()
    for name in ("confusion", "mistakes"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[name].stat().st_size > 5000


def test_evaluate_command_prints_accuracy_and_writes_files(small_model_dir, tmp_path, capsys):
    assert main(["evaluate", "--model", str(small_model_dir), "--out", str(tmp_path / "ev"), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert 0.9 < body["accuracy"] < 1 and body["images"] == 10000
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["confusion.png", "evaluation.json", "mistakes.png"]


def test_evaluate_command_errors_are_one_line(small_model_dir, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"weights": "mine"}')
    for argv in (["--set", "validation"], ["--model", str(foreign)], ["--model", str(tmp_path / "nothing")]):
        out = tmp_path / "out"
        assert main(["evaluate", "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "error" in err
        assert not out.exists()


def test_report_section_writes_confusion_and_mistakes(small_model, mnist, tmp_path):
    from cnnscope.analysis.evaluation import report_section
    from cnnscope.app.report import ReportContext

    ctx = ReportContext(model=small_model, config={}, mnist=mnist, model_dir=tmp_path, folder=tmp_path / "r", quick=True)
    section = report_section(ctx)
    assert [f.path for f in section.figures] == ["confusion_matrix.png", "confident_mistakes.png"]
    assert all((tmp_path / "r" / f.path).exists() for f in section.figures)
    assert "2000 images" in section.facts["test accuracy"]
