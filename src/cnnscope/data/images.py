"""Turn any picture of a digit into a 28x28 MNIST-style image.

One function, `mnist_style`, serves `cnnscope predict --image`, `cnnscope activations
--image` and the web explorer's drawing canvas. It does what LeCun et al. did to NIST
digits: grayscale, white ink on black, crop to the ink, fit the ink's bounding box into
20x20 keeping the aspect ratio (anti-aliased), then place it in a 28x28 field so that its
centre of mass sits at pixel (14, 14) (integer shift, as in MNIST, whose mean centre of
mass is (13.99, 14.01) with the 0.29 px spread of integer rounding).

`DigitImage` is such a 28x28 digit with where it came from; `dataset_images` and `file_image`
make them from a data set or a picture file, `to_batch` turns them into the network's input.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError

MAX_PIXELS = 40_000_000  # refuse larger images: 40 megapixels is far beyond any digit photo
FIELD = 28  # output size
BOX = 20  # the ink's bounding box is fitted into BOX x BOX
CENTRE = 14.0  # target centre of mass (row, column), as measured on MNIST
MIN_CONTRAST = 0.08  # ink must differ from the background by 8% of the full range
BOX_THRESHOLD = 0.2  # pixels with at least 20% of the peak ink define the bounding box


def load_image_file(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file fully (EXIF rotation applied); UserError if it cannot be used."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"image file {path} does not exist")
    if not path.is_file():
        raise UserError(f"image path {path} is not a file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"cannot read image file {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise UserError(f"image file {path} is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise UserError(
                    f"image {path} is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                    f"the limit is {max_pixels / 1e6:.0f} megapixels, shrink it first"
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return image.copy()
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(f"{path} is not a readable image (expected PNG, JPEG, GIF, BMP, WebP, ...)") from None
    except Image.DecompressionBombError as exc:
        raise UserError(f"image {path} is too large to decode safely: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError, zlib.error, struct.error, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"image {path} is corrupt or truncated: {first}") from None


def mnist_style(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any digit picture (PIL image or array) -> uint8 28x28, white ink on black, MNIST-centred.

    Arrays may be H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA), uint8 in [0, 255] or
    float in [0, 1]. Raises UserError if there is no ink (a blank or uniform picture).
    """
    gray = _grayscale(image)  # float H x W in [0, 1]
    ink = _ink(gray)
    rows, cols = _ink_box(ink)
    crop = ink[rows[0] : rows[1], cols[0] : cols[1]]
    fitted = _fit(crop, BOX)
    return _place_by_centre_of_mass(fitted)


# ---- digits to look at ---------------------------------------------------------------------


@dataclass(frozen=True)
class DigitImage:
    """A 28x28 uint8 digit (white ink on black) and where it came from."""

    pixels: np.ndarray
    name: str
    label: int | None = None
    index: int | None = None
    split: str | None = None

    def describe(self) -> dict:
        return {"name": self.name, "split": self.split, "index": self.index, "label": self.label}


def dataset_images(mnist, indices: Sequence[int], which: str = "test") -> list[DigitImage]:
    """Images of a data set by position.

    Args:
        mnist: an `Mnist` (anything with `images(which) -> (images, labels)`).
        indices: positions in the `which` split.
        which: "test" or "train".

    Returns:
        One `DigitImage` per index, named "test #19"; UserError naming the valid range.
    """
    images, labels = mnist.images(which)
    out = []
    for index in indices:
        if not 0 <= int(index) < len(images):
            raise UserError(f"index {index} is out of range for the {which} set: 0..{len(images) - 1}")
        out.append(DigitImage(images[int(index)], f"{which} #{int(index)}", int(labels[int(index)]), int(index), which))
    return out


def file_image(path: str | os.PathLike) -> DigitImage:
    """A picture file made MNIST-style (`mnist_style`), named by its file name; UserError if unusable."""
    return DigitImage(mnist_style(load_image_file(path)), os.path.basename(os.fspath(path)))


def to_batch(images: Sequence[DigitImage], device: torch.device | str = "cpu") -> torch.Tensor:
    """The network's input for `images`: N x 1 x 28 x 28 float tensor in [0, 1] on `device`."""
    return to_tensor(np.stack([image.pixels for image in images])).to(device)


# ---- steps ------------------------------------------------------------------------------


def _grayscale(image: Image.Image | np.ndarray) -> np.ndarray:
    """Gray levels in [0, 1]; transparent areas become the colour opposite to the strokes."""
    if isinstance(image, np.ndarray):
        image = _array_to_image(image)
    if not isinstance(image, Image.Image):
        raise UserError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise UserError("the image has no pixels")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
        alpha = rgba[..., 3]
        luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
        if alpha.min() < 1.0:
            weight = alpha.sum()
            stroke_level = (luminance * alpha).sum() / weight if weight > 0 else 0.0
            background = 1.0 if stroke_level < 0.5 else 0.0  # dark strokes on white, light on black
            return luminance * alpha + background * (1.0 - alpha)
        return luminance
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _array_to_image(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]  # 1 x H x W
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise UserError(f"expected an H x W, H x W x 3 or H x W x 4 image array, got shape {array.shape}")
    if array.size == 0:
        raise UserError("the image has no pixels")
    if array.dtype == np.uint8:
        data = array
    elif array.dtype == bool:
        data = array.astype(np.uint8) * 255
    else:
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise UserError("the image array contains NaN or infinite values")
        scale = 255.0 if values.max() <= 1.0 else 1.0  # floats in [0, 1], else [0, 255]
        data = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(data))  # L, RGB or RGBA from the shape


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink amount in [0, 1] (white ink on black), background removed; UserError if none."""
    border = _border(gray)
    background = float(np.median(border))
    values = 1.0 - gray if background > 0.5 else gray  # light background: dark ink, invert
    background = 1.0 - background if background > 0.5 else background
    peak = float(values.max())
    if peak - background < MIN_CONTRAST:
        raise UserError(
            "the image is empty: no digit found (it is blank or has no contrast between ink and background)"
        )
    return np.clip((values - background) / (peak - background), 0.0, 1.0)


def _border(gray: np.ndarray) -> np.ndarray:
    width = max(1, min(gray.shape) // 20)
    frame = np.ones_like(gray, dtype=bool)
    frame[width:-width, width:-width] = False
    return gray[frame] if frame.any() else gray.ravel()


def _ink_box(ink: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Row and column ranges [start, stop) of the pixels with at least BOX_THRESHOLD ink."""
    strong = ink >= BOX_THRESHOLD
    rows = np.flatnonzero(strong.any(axis=1))
    cols = np.flatnonzero(strong.any(axis=0))
    return (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)


def _fit(crop: np.ndarray, box: int) -> np.ndarray:
    """Resize so the longer side is `box` pixels (anti-aliased); peak ink scaled to 1."""
    height, width = crop.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(crop.astype(np.float32))  # mode "F"
    fitted = np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    fitted = np.clip(fitted, 0.0, None)
    peak = fitted.max()
    return fitted / peak if peak > 0 else fitted


def _place_by_centre_of_mass(fitted: np.ndarray) -> np.ndarray:
    """Paste into a 28x28 field, shifted by whole pixels so the centre of mass is at (14, 14)."""
    height, width = fitted.shape
    ys, xs = np.mgrid[0:height, 0:width]
    mass = fitted.sum()
    cy, cx = (fitted * ys).sum() / mass, (fitted * xs).sum() / mass
    top = int(np.clip(round(CENTRE - cy), 0, FIELD - height))
    left = int(np.clip(round(CENTRE - cx), 0, FIELD - width))
    field = np.zeros((FIELD, FIELD), dtype=np.float64)
    field[top : top + height, left : left + width] = fitted
    return np.clip(np.rint(field * 255.0), 0, 255).astype(np.uint8)
