"""data.images: image files to MNIST-style 28x28 inputs, and the digits to look at (`DigitImage`)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from cnnscope.data.images import (
    DigitImage,
    dataset_images,
    file_image,
    load_image_file,
    mnist_style,
    to_batch,
)
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




def test_dataset_images_name_label_and_range(mnist):
    first, second = dataset_images(mnist, [7, 3], "train")
    assert first.name == "train #7" and first.label == int(mnist.train_y[7]) and first.index == 7
    assert np.array_equal(second.pixels, mnist.train_x[3]) and second.split == "train"
    assert first.describe() == {"name": "train #7", "split": "train", "index": 7, "label": int(mnist.train_y[7])}
    with pytest.raises(UserError, match=r"0\.\.9999"):
        dataset_images(mnist, [10000])
    with pytest.raises(UserError, match=r"0\.\.59999"):
        dataset_images(mnist, [-1], "train")


def test_file_image_and_batch(mnist, tmp_path):
    path = tmp_path / "seven.png"
    Image.fromarray(mnist.test_x[0]).save(path)
    image = file_image(path)
    assert image.name == "seven.png" and image.label is None and image.pixels.shape == (28, 28)
    batch = to_batch([image, DigitImage(mnist.test_x[1], "one")])
    assert batch.shape == (2, 1, 28, 28) and batch.dtype == torch.float32
    assert torch.equal(batch[1:], to_tensor(mnist.test_x[1:2]))


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA"])
def test_damaged_image_files_are_user_errors_or_digits(mnist, tmp_path, image_format):
    """40 seeded damages (changed bytes, truncation) of a real MNIST digit in each format: every
    file gives a 28x28 digit or a one-line UserError, never another exception."""
    rng = np.random.default_rng(15)
    buffer = io.BytesIO()
    Image.fromarray(np.kron(255 - mnist.test_x[0], np.ones((2, 2), dtype=np.uint8))).convert("RGB").save(buffer, image_format)
    original = buffer.getvalue()
    outcomes = {"digit": 0, "refused": 0}
    for case in range(40):
        damaged = bytearray(original)
        for position in rng.integers(0, len(damaged), rng.integers(1, 9)):
            damaged[position] = int(rng.integers(0, 256))
        if case % 3 == 0:
            damaged = damaged[: int(rng.integers(1, len(damaged)))]
        path = tmp_path / f"damaged{case}.{image_format.lower()}"
        path.write_bytes(bytes(damaged))
        try:
            assert file_image(path).pixels.shape == (28, 28)
            outcomes["digit"] += 1
        except UserError as error:
            assert "\n" not in str(error)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == 40


def test_a_fifo_image_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "digit.png")
    with pytest.raises(UserError, match="is not a file"):
        load_image_file(tmp_path / "digit.png")
