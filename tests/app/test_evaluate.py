"""`cnnscope evaluate`: the pictures and the JSON are written; errors are one line."""

from __future__ import annotations

import json

from cnnscope.analysis.evaluation import evaluate
from cnnscope.app.cli import main
from cnnscope.app.commands.evaluate import save_evaluation


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
