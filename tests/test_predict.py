"""Image files to MNIST-style 28x28 inputs, and `cnnscope predict`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from cnnscope.app.cli import main
from cnnscope.data.images import load_image_file, mnist_style
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    mass = image.astype(float).sum()
    return float((image * ys).sum() / mass), float((image * xs).sum() / mass)


def test_mnist_style_leaves_mnist_digits_nearly_unchanged(small_model, mnist):
    images, labels = mnist.test_x[:500], mnist.test_y[:500]
    converted = np.stack([mnist_style(image) for image in images])
    assert converted.dtype == np.uint8 and converted.shape == (500, 28, 28)
    assert np.abs(converted.astype(int) - images).mean() < 2.0  # grey levels out of 255
    with torch.no_grad():
        before = small_model(to_tensor(images)).argmax(1).numpy()
        after = small_model(to_tensor(converted)).argmax(1).numpy()
    assert (before == after).mean() > 0.97
    assert (after == labels).mean() > 0.9


def test_a_big_dark_on_light_photo_becomes_a_centred_20x20_digit(small_model, mnist):
    digit = mnist.test_x[0]  # a 7
    big = 255 - np.asarray(Image.fromarray(digit).resize((280, 420)))  # dark ink on white, stretched
    big = np.pad(big, ((50, 10), (200, 30)), constant_values=255)  # off centre
    rgb = np.repeat(big[..., None], 3, axis=2)
    out = mnist_style(Image.fromarray(rgb))
    rows, cols = np.flatnonzero(out.max(1) > 50), np.flatnonzero(out.max(0) > 50)
    assert rows[-1] - rows[0] + 1 <= 20 and rows[-1] - rows[0] + 1 >= 18  # the long side fills ~20 px
    assert cols[-1] - cols[0] + 1 < 18  # aspect ratio kept
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert out[0].max() == 0 and out[:, 0].max() == 0  # black background
    with torch.no_grad():
        assert small_model(to_tensor(out[None])).argmax().item() == 7


def test_transparent_canvas_strokes_are_ink():
    canvas = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(150, 40), (150, 260)], fill=(0, 0, 0, 255), width=24)
    out = mnist_style(canvas)
    assert out.max() == 255 and out[:, 14].max() == 255 and out[:, :10].max() == 0


def test_float_and_uint8_arrays_give_the_same_result(mnist):
    image = mnist.test_x[3]
    assert np.array_equal(mnist_style(image), mnist_style(image.astype(np.float64) / 255))


@pytest.mark.parametrize("blank", [np.zeros((40, 40), np.uint8), np.full((30, 50, 3), 200, np.uint8)])
def test_an_image_without_ink_is_refused(blank):
    with pytest.raises(UserError, match="no digit found"):
        mnist_style(blank)


def test_load_image_file_refuses_bad_files_with_a_clear_message(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    Image.new("L", (64, 64), 255).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    with pytest.raises(UserError, match="does not exist"):
        load_image_file(tmp_path / "missing.png")
    with pytest.raises(UserError, match="is empty"):
        load_image_file(tmp_path / "empty.png")
    with pytest.raises(UserError, match="not a readable image"):
        load_image_file(tmp_path / "text.png")
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_image_file(tmp_path / "cut.png")
    with pytest.raises(UserError, match="not a file"):
        load_image_file(tmp_path)
    with pytest.raises(UserError, match="megapixels"):
        load_image_file(tmp_path / "ok.png", max_pixels=1000)
    assert load_image_file(tmp_path / "ok.png").size == (64, 64)


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
