"""`cnnscope predict`: probabilities for a dataset image or an image file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnscope.app.cli import main


def test_predict_index_prints_ten_probabilities_and_the_class(small_model_dir, mnist, capsys):
    assert main(["predict", "--model", str(small_model_dir), "--index", "0"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "%" in line and "|" in line]
    assert len(lines) == 10
    assert sum(float(line.split("%")[0].split()[-1]) for line in lines) == pytest.approx(100, abs=0.1)
    assert f"true class {mnist.test_y[0]}" in out and "prediction: 7" in out


def test_predict_json_and_image_file(small_model_dir, mnist, tmp_path, capsys):
    assert main(["predict", "--model", str(small_model_dir), "--index", "5", "--set", "train", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["true"] == int(mnist.train_y[5]) and len(body["probabilities"]) == 10
    photo = tmp_path / "seven.jpg"
    Image.fromarray(255 - np.asarray(Image.fromarray(mnist.test_x[0]).resize((200, 200)))).convert("RGB").save(photo)
    saved = tmp_path / "input.png"
    assert main(["predict", "--model", str(small_model_dir), "--image", str(photo), "--json",
                 "--save-input", str(saved)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["predicted"] == 7 and body["image"] == str(photo)
    assert Image.open(saved).size == (28, 28) and saved.with_suffix(".json").exists()


@pytest.mark.parametrize("args, message", [
    (["--image", "{tmp}/text.png"], "not a readable image"),
    (["--image", "{tmp}/missing.png"], "does not exist"),
    (["--image", "{tmp}/blank.png"], "no digit found"),
    (["--index", "10000"], "out of range"),
    (["--index", "3", "--set", "valid"], "unknown image set"),
    (["--index", "3", "--model", "{tmp}/no_model"], "no checkpoint"),
])
def test_predict_errors_are_one_line_with_exit_code_2(small_model_dir, tmp_path, capsys, args, message):
    (tmp_path / "text.png").write_text("hello")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    argv = ["predict", "--model", str(small_model_dir), *[a.format(tmp=tmp_path) for a in args],
            "--save-input", str(tmp_path / "saved.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "saved.png").exists()
