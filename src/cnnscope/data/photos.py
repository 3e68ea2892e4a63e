"""Photos for dreaming: read any image Pillow can open (or a scikit-learn sample photo),
check its size, and split it into luminance (what the MNIST network sees) and chroma.

A photo is kept as its luminance Y (1 x 1 x H x W, floats in [0, 1]) plus, for colour
photos, its chroma Cb/Cr (2 x H x W). Dreams change Y only; `Photo.compose(y)` puts the
original chroma back, so the colours of the photo survive the dream. The YCbCr transform
is the full-range BT.601 one of JPEG (and of Pillow's "YCbCr" mode), done in floats.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnscope.data.images import MAX_PIXELS, load_image_file
from cnnscope.errors import UserError

SAMPLES = ("flower", "china")  # the photos scikit-learn ships (sklearn.datasets.load_sample_image)
MIN_SIDE = 28  # the network's own input size: smaller photos cannot be dreamed on
MAX_SIDE = 16384  # larger photos are refused, not resized; so are photos over MAX_PIXELS
DEFAULT_MAX_SIDE = 1024  # photos with a longer side are resized down to this (with a note)

# full-range BT.601 (JPEG / Pillow "YCbCr"), values in [0, 1], chroma centred on 0.5
_KR, _KG, _KB = 0.299, 0.587, 0.114


@dataclass
class Photo:
    """A photo ready for dreaming: luminance, optional chroma, and where it came from."""

    luminance: torch.Tensor  # 1 x 1 x H x W float32 in [0, 1]
    chroma: np.ndarray | None  # 2 x H x W float32 (Cb, Cr) in [0, 1]; None for a gray photo
    source: str
    original_size: tuple[int, int]  # (height, width) as stored in the file
    resize_note: str | None = None  # set when the photo was resized down on loading

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the photo as used."""
        return int(self.luminance.shape[-2]), int(self.luminance.shape[-1])

    @property
    def is_color(self) -> bool:
        return self.chroma is not None

    def rgb(self) -> torch.Tensor:
        """The photo as 1 x 3 x H x W RGB in [0, 1] (a grey photo in three equal channels)."""
        y = self._values(self.luminance)
        return torch.from_numpy(np.stack([y, y, y]) if self.chroma is None else self._with_chroma(y))[None]

    def _values(self, luminance: torch.Tensor) -> np.ndarray:
        return luminance.detach().reshape(self.size).float().cpu().numpy()

    def _with_chroma(self, y: np.ndarray) -> np.ndarray:
        """A luminance (H x W) with this photo's chroma -> 3 x H x W RGB in [0, 1]."""
        return ycbcr_to_rgb(np.clip(y, 0.0, 1.0), self.chroma[0], self.chroma[1])

    def compose(self, luminance: torch.Tensor, color: bool = True) -> Image.Image:
        """A new luminance (H x W or 1 x 1 x H x W, [0, 1]) with this photo's chroma -> PIL image.

        Returns an RGB image for colour photos (unless `color` is False), else an "L" image. A
        3-channel image (3 x H x W or 1 x 3 x H x W: the dream of a colour network) is already
        RGB and is returned as it is (in grey with `color` False).
        """
        if luminance.dim() >= 3 and luminance.shape[-3] == 3:
            rgb = Image.fromarray(to_uint8(luminance.detach().reshape(3, *self.size).float().cpu().numpy()
                                           .transpose(1, 2, 0)))
            return rgb if color else rgb.convert("L")
        y = self._values(luminance)
        if not (color and self.chroma is not None):
            return Image.fromarray(to_uint8(y))
        return Image.fromarray(to_uint8(self._with_chroma(y).transpose(1, 2, 0)))

    def original(self, color: bool = True) -> Image.Image:
        """The photo as used (after any resize), as a PIL image."""
        return self.compose(self.luminance, color=color)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> uint8, rounded."""
    return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def rgb_to_ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3 x H x W RGB in [0, 1] -> (Y, Cb, Cr), each H x W in [0, 1] (numpy: predictable on a busy CPU)."""
    r, g, b = (np.asarray(c, dtype=np.float32) for c in rgb)
    y = _KR * r + _KG * g + _KB * b
    cb = 0.5 + (b - y) / (2.0 * (1.0 - _KB))
    cr = 0.5 + (r - y) / (2.0 * (1.0 - _KR))
    return y, cb, cr


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """(Y, Cb, Cr), each H x W in [0, 1] -> 3 x H x W RGB, clipped to [0, 1]."""
    y, cb, cr = (np.asarray(c, dtype=np.float32) for c in (y, cb, cr))
    r = y + 2.0 * (1.0 - _KR) * (cr - 0.5)
    b = y + 2.0 * (1.0 - _KB) * (cb - 0.5)
    g = (y - _KR * r - _KB * b) / _KG
    return np.clip(np.stack([r, g, b]), 0.0, 1.0)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file (the checks of `preprocess.load_image_file`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = load_image_file(path, max_pixels=MAX_PIXELS)
    check_size(image.height, image.width, f"image {str(path)!r}")
    return image


def check_size(height: int, width: int, what: str = "image") -> None:
    """Refuse empty, too small and gigantic images (the stated limits are in this module)."""
    if height <= 0 or width <= 0:
        raise UserError(f"{what} has no pixels ({width}x{height})")
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise UserError(f"{what} is {width}x{height} pixels; the maximum is {MAX_SIDE} pixels per side "
                        f"and {MAX_PIXELS:,} pixels in all")
    if min(height, width) < MIN_SIDE:
        raise UserError(f"{what} is {width}x{height} pixels; dreams need at least {MIN_SIDE}x{MIN_SIDE}")


def sample_image(name: str) -> Image.Image:
    """One of the photos scikit-learn ships: 'flower' or 'china' (427 x 640, RGB)."""
    if name not in SAMPLES:
        raise UserError(f"unknown sample photo {name!r}; allowed: {', '.join(SAMPLES)}")
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it (3 s)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the sample photos come with scikit-learn: pip install 'cnnscope[samples]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "images" / f"{name}.jpg"
    if not path.is_file():  # a packaging we do not know: ask scikit-learn itself
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(f"{name}.jpg"))
    with Image.open(path) as image:
        return image.convert("RGB")


def image_to_array(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> H x W (gray) or H x W x 3 (colour) float32 array in [0, 1].

    Transparent pixels are put on white; 16-bit and float gray images keep their depth.
    """
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            top = 255.0 if values.max() > 1.0 else 1.0
        else:
            top = 65535.0 if values.max() > 255 else 255.0
        return np.clip(values / top, 0.0, 1.0).astype(np.float32)
    image = _to_l_or_rgb(image)
    if image.mode == "L":
        return np.asarray(image, dtype=np.float32) / 255.0
    rgb = np.asarray(image, dtype=np.float32) / 255.0
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return rgb[..., 0].copy()  # a gray photo stored as RGB
    return rgb


def _to_l_or_rgb(image: Image.Image) -> Image.Image:
    """Any 8-bit mode -> "L" or "RGB"; transparent pixels composited onto white."""
    if image.mode in ("L", "RGB"):
        return image
    gray = image.mode in ("1", "LA", "La")
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L" if gray else "RGB")


def resize_array(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic, antialiased resize of an H x W or H x W x 3 float array (values kept in [0, 1])."""
    tensor = torch.from_numpy(np.ascontiguousarray(values))
    tensor = tensor[None, None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(tensor, size=(height, width), mode="bicubic",
                                          align_corners=False, antialias=True)[0].clamp(0.0, 1.0)
    return (out[0] if values.ndim == 2 else out.permute(1, 2, 0)).contiguous().numpy()


def photo_from_image(image: Image.Image, source: str = "image", max_side: int = DEFAULT_MAX_SIDE,
                     color: bool = True) -> Photo:
    """A PIL image -> Photo; resized down (bicubic, antialiased) if its longer side exceeds `max_side`."""
    if max_side < MIN_SIDE:
        raise UserError(f"maximum side must be at least {MIN_SIDE} pixels, got {max_side}")
    check_size(image.height, image.width, source)
    original_size = (image.height, image.width)
    note = None
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        width, height = max(MIN_SIDE, round(image.width * scale)), max(MIN_SIDE, round(image.height * scale))
        note = (f"{source} is {image.width}x{image.height} pixels; resized to {width}x{height} "
                f"(longer side at most {max_side}; change with --max-side)")
        if image.mode.startswith("I") or image.mode == "F":
            values = resize_array(image_to_array(image), height, width)
        else:
            values = image_to_array(_to_l_or_rgb(image).resize((width, height), Image.Resampling.BICUBIC))
    else:
        values = image_to_array(image)
    if values.ndim == 2 or not color:
        gray = values if values.ndim == 2 else rgb_to_ycbcr(values.transpose(2, 0, 1))[0]
        return Photo(torch.from_numpy(np.ascontiguousarray(gray))[None, None], None, source, original_size, note)
    y, cb, cr = rgb_to_ycbcr(values.transpose(2, 0, 1))
    return Photo(torch.from_numpy(y)[None, None], np.stack([cb, cr]), source, original_size, note)


def load_photo(path: str | os.PathLike | None = None, sample: str | None = None,
               max_side: int = DEFAULT_MAX_SIDE, color: bool = True) -> Photo:
    """Load a photo from a file or a scikit-learn sample ('flower', 'china') -- exactly one of them."""
    if (path is None) == (sample is None):
        raise UserError("give either an image file or a sample photo (--sample flower|china), not both or neither")
    if sample is not None:
        return photo_from_image(sample_image(sample), f"sample photo {sample!r}", max_side, color)
    return photo_from_image(open_image(path), f"image {str(path)!r}", max_side, color)
