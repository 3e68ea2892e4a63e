"""Parametrisations: how the images the network sees are made from the parameters the ascent changes.

The ascent keeps parameters `p`, the network sees `images = parametrization(p)`, and the step
rule moves `p` along d objective / d p. Post-step operations (the articles' standardisation, a
blur) act on the image, which is then expressed as parameters again (`project`), so every
parametrisation keeps the articles' constraint of a standardised image. A parametrisation is a
small object with three methods:

    params(images)   parameters whose image is (as close as it can be to) `images`, the starts
    __call__(p)      the images (N x 1 x H x W, the network's standardised input space), differentiable
    project(p, ops)  the post-step operations applied to the image, back as parameters

- `Pixel` (the default, the articles' algorithm): the parameters are the pixels.
- `Fourier(decay)`: the real FFT of the image ("orthonormal", so energy is kept), each coefficient
  scaled by 1 / frequency**decay (Lucid/Lucent's "fft" image, Olah et al. 2017). A gradient step
  on the coefficients is a step along the gradient low-pass filtered by 1/f**(2 decay): coarse
  structure first, as the articles' author suggested ("work with a Fourier series right from
  the start"). Sized for the image: frequencies in cycles per pixel, the lowest 1 / size; no
  ImageNet colour statistics, no upsampling to 224.
- `Maco(magnitude)`: the spectrum's magnitude is fixed to the mean amplitude spectrum of the
  MNIST training images (Fel et al. 2023, "MACO"); only the phase is optimised. The parameters
  are a real image whose spectrum's phase is used (so the phase is always that of a real image,
  and the magnitude is exactly the dataset's in every bin); the image is the inverse FFT, then
  standardised. `mnist_magnitude()` computes the spectrum once from the data and caches it.
- `ValidPixels(inner, normalize)`: any of the above squashed into the range of real pixels: a
  sigmoid of `gain` x the inner (standardised) image gives raw pixels in [0, 1], then the model's
  own input normalisation maps them into its standardised input space. The post-step
  operations act on the inner image.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnscope.errors import UserError, check_choice, check_positive
from cnnscope.nn.model import per_image_standardize

PARAMETRIZATIONS = ("pixel", "fourier", "maco")
VALID_GAIN = 2.0  # sigmoid(2 z): a standardised pattern's +-2 std reach 2% and 98% of the grey range
MACO_SIZE = 28  # the size of the images the dataset spectrum is measured on

Operation = Callable[[torch.Tensor], torch.Tensor]


class Parametrization:
    """Base class: `project` applies the post-step operations to the image and re-expresses it."""

    name = "custom"

    def params(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def project(self, params: torch.Tensor, operations: Sequence[Operation]) -> torch.Tensor:
        images = self(params)
        for operation in operations:
            images = operation(images)
        return self.params(images)

    def describe(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Pixel(Parametrization):
    """The parameters are the pixels (the articles' algorithm)."""

    name = "pixel"

    def params(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        return params


def frequencies(height: int, width: int) -> torch.Tensor:
    """|f| in cycles per pixel of each bin of a real FFT of a height x width image (H x W//2+1)."""
    fy = torch.fft.fftfreq(int(height), dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(int(width), dtype=torch.float64)[None, :]
    return (fy * fy + fx * fx).sqrt()


def fourier_scale(height: int, width: int, decay: float = 1.0) -> torch.Tensor:
    """1 / max(|f|, 1/size)**decay per bin, normalised to an RMS of 1 (white noise keeps its energy)."""
    lowest = 1.0 / max(int(height), int(width))
    scale = 1.0 / frequencies(height, width).clamp_min(lowest) ** float(decay)
    return (scale / scale.pow(2).mean().sqrt()).float()


class Fourier(Parametrization):
    """The image's real FFT (orthonormal), each coefficient scaled by 1 / frequency**decay.

    The parameters are N x C x H x (W//2+1) x 2 real tensors (real and imaginary parts).
    """

    name = "fourier"

    def __init__(self, decay: float = 1.0):
        self.decay = float(check_positive("fourier decay", decay, allow_zero=True))
        self.size: tuple[int, int] | None = None
        self._scale: torch.Tensor | None = None

    def scale(self, device) -> torch.Tensor:
        if self._scale is None or self._scale.device != torch.device(device):
            self._scale = fourier_scale(*self.size, self.decay).to(device)
        return self._scale

    def params(self, images: torch.Tensor) -> torch.Tensor:
        self.size = (int(images.shape[-2]), int(images.shape[-1]))
        spectrum = torch.fft.rfft2(images.float(), norm="ortho") / self.scale(images.device)
        return torch.view_as_real(spectrum).contiguous()

    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        if self.size is None:
            raise ValueError("Fourier.params(images) must be called first (it fixes the image size)")
        spectrum = torch.view_as_complex(params.contiguous()) * self.scale(params.device)
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")

    def describe(self) -> dict:
        return {"name": self.name, "decay": self.decay}

    def __repr__(self) -> str:
        return f"Fourier(decay={self.decay:g})"


def spectrum_energy(magnitude: torch.Tensor, width: int) -> torch.Tensor:
    """Sum of |X|^2 over the full spectrum of a real image from its half spectrum (H x W//2+1):
    the columns that stand for two bins (k and -k) count twice."""
    weights = torch.full((magnitude.shape[-1],), 2.0, dtype=magnitude.dtype)
    weights[0] = 1.0
    if int(width) % 2 == 0:
        weights[-1] = 1.0
    return (magnitude.pow(2) * weights).sum()


def amplitude_spectrum(images: torch.Tensor) -> torch.Tensor:
    """The mean amplitude spectrum (H x W//2+1, float64) of raw images (N x 1 x H x W), each
    standardised per image first, rescaled so that an image with this magnitude has std 1."""
    total = None
    for start in range(0, images.shape[0], 5000):
        batch = per_image_standardize(images[start:start + 5000].double())
        part = torch.fft.rfft2(batch[:, 0], norm="ortho").abs().sum(dim=0)
        total = part if total is None else total + part
    magnitude = total / images.shape[0]
    magnitude[0, 0] = 0.0  # standardised images have no mean
    height, width = images.shape[-2:]
    return magnitude * math.sqrt(height * width / float(spectrum_energy(magnitude, width)))


def resample_magnitude(magnitude: torch.Tensor, size: tuple[int, int], measured_width: int = MACO_SIZE
                       ) -> torch.Tensor:
    """A magnitude measured on `measured_width`-pixel images, at the frequencies (cycles per pixel)
    of another image size: bilinear in the centred full spectrum, rescaled to std 1 again. The
    measured size itself gives the magnitude back unchanged."""
    height, width = int(size[0]), int(size[1])
    mh = magnitude.shape[0]
    if (height, width) == (mh, measured_width):
        return magnitude
    full = torch.cat([magnitude, _mirror(magnitude, measured_width)], dim=1)
    centred = torch.fft.fftshift(full, dim=(0, 1))
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None].expand(height, width // 2 + 1)
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :].expand(height, width // 2 + 1)
    # position in the centred grid: index = f * n + n // 2; grid_sample wants [-1, 1] over the index range
    gy = (fy * mh + mh // 2) / (mh - 1) * 2 - 1
    gx = (fx * measured_width + measured_width // 2) / (measured_width - 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1)[None].float()
    sampled = F.grid_sample(centred[None, None].float(), grid, mode="bilinear", padding_mode="border",
                            align_corners=True)[0, 0].double()
    sampled[0, 0] = 0.0
    return sampled * math.sqrt(height * width / float(spectrum_energy(sampled, width)))


def _mirror(magnitude: torch.Tensor, width: int) -> torch.Tensor:
    """The columns kx = W//2+1 .. W-1 of the full spectrum of a real image: |X(ky, kx)| = |X(-ky, W-kx)|."""
    missing = width - magnitude.shape[1]
    columns = magnitude[:, 1:1 + missing].flip(-1)  # kx = W - k for k = missing .. 1
    rows = torch.cat([columns[:1], columns[1:].flip(0)])  # ky -> -ky
    return rows


@functools.lru_cache(maxsize=4)
def _cached_magnitude(home: str) -> torch.Tensor:
    from cnnscope.data.mnist import load_mnist, to_tensor
    from cnnscope.files import write_bytes

    path = Path(home) / "maco_magnitude.npy"
    if path.is_file():
        array = np.load(path, allow_pickle=False)
        if array.shape == (MACO_SIZE, MACO_SIZE // 2 + 1) and np.isfinite(array).all():
            return torch.from_numpy(array)
    magnitude = amplitude_spectrum(to_tensor(load_mnist().train_x))
    buffer = io.BytesIO()
    np.save(buffer, magnitude.numpy(), allow_pickle=False)
    write_bytes(path, buffer.getvalue())
    return magnitude


def mnist_magnitude(size: tuple[int, int] = (MACO_SIZE, MACO_SIZE)) -> torch.Tensor:
    """The mean amplitude spectrum of the 60000 MNIST training images (standardised per image,
    scaled to an image of std 1), at `size`; computed once and cached in $CNNSCOPE_HOME."""
    from cnnscope.data.mnist import cnnscope_home

    return resample_magnitude(_cached_magnitude(str(cnnscope_home())), size).float()


class Maco(Parametrization):
    """A fixed spectrum magnitude (default: MNIST's), the phase optimised (Fel et al. 2023).

    The parameters are a real N x C x H x W image; its spectrum's phase, with the fixed
    magnitude, is the image (inverse FFT, standardised per image).
    """

    name = "maco"

    def __init__(self, magnitude: torch.Tensor | None = None):
        self.magnitude = None if magnitude is None else magnitude.float()
        self._sized: dict[tuple, torch.Tensor] = {}

    def magnitude_for(self, height: int, width: int, device) -> torch.Tensor:
        key = (height, width, str(device))
        if key not in self._sized:
            if self.magnitude is None:
                magnitude = mnist_magnitude((height, width))
            elif tuple(self.magnitude.shape) == (height, width // 2 + 1):
                magnitude = self.magnitude
            else:
                raise UserError(f"the MACO magnitude is {tuple(self.magnitude.shape)}, but {height}x{width} images "
                                f"need {height}x{width // 2 + 1}", "magnitude")
            self._sized[key] = magnitude.to(device)
        return self._sized[key]

    def params(self, images: torch.Tensor) -> torch.Tensor:
        return images.float()

    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        height, width = int(params.shape[-2]), int(params.shape[-1])
        spectrum = torch.fft.rfft2(params, norm="ortho")
        phase = spectrum / spectrum.abs().clamp_min(1e-12)
        image = torch.fft.irfft2(phase * self.magnitude_for(height, width, params.device), s=(height, width),
                                 norm="ortho")
        return per_image_standardize(image)

    def __repr__(self) -> str:
        return "Maco()"


def model_normalization(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's own map from raw [0, 1] pixels to its standardised input (its `normalize`)."""
    normalize = getattr(model, "normalize", None)
    if normalize is None or not callable(normalize):
        raise UserError("valid pixels need the model's input normalisation (a `normalize` module mapping raw "
                        "[0, 1] pixels to the network's input); this model has none", "valid pixels")
    return normalize


def valid_range(model) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(lowest, highest) standardised value a real pixel can have (black and white through the model's
    normalisation, per pixel: 1 x C x H x W), or None when the normalisation is per image
    (then every image is standardised and no pixel is out of range)."""
    spec = getattr(model, "spec", None)
    if spec is not None and spec.normalization.mode == "per_image":
        return None
    normalize = model_normalization(model)
    size = spec.image_size if spec is not None else MACO_SIZE
    channels = spec.in_channels if spec is not None else 1
    with torch.no_grad():
        black = normalize(torch.zeros(1, channels, size, size)).float()
        white = normalize(torch.ones(1, channels, size, size)).float()
    return torch.minimum(black, white), torch.maximum(black, white)


class ValidPixels(Parametrization):
    """`inner`'s image squashed into real pixels: normalize(sigmoid(gain * inner image)).

    `params(images)` reads `images` as the inner (standardised) pattern, so the same noise
    starts serve every parametrisation; the post-step operations act on the inner image.
    """

    def __init__(self, inner: Parametrization, normalize: Callable[[torch.Tensor], torch.Tensor],
                 gain: float = VALID_GAIN):
        self.inner, self.normalize = inner, normalize
        self.gain = float(check_positive("valid pixel gain", gain))
        self.name = f"{inner.name}+valid"

    def params(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner.params(images)

    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        return self.normalize(torch.sigmoid(self.gain * self.inner(params)))

    def project(self, params: torch.Tensor, operations: Sequence[Operation]) -> torch.Tensor:
        return self.inner.project(params, operations)

    def describe(self) -> dict:
        return {**self.inner.describe(), "valid_pixels": True, "gain": self.gain}

    def __repr__(self) -> str:
        return f"ValidPixels({self.inner!r}, gain={self.gain:g})"


class ImageValidPixels(ValidPixels):
    """`ValidPixels` whose starts are real images (a dream's photo, standardised): `params` inverts
    the squashing -- the pixels back through the (affine) normalisation into [0, 1], then the
    sigmoid's inverse -- so the ascent starts from the photo itself, not from a contrast-warped
    one. Pixels at black or white are moved `EDGE` inside the range (the sigmoid never reaches
    them); a normalisation that is not affine per pixel (per image) keeps the pattern reading."""

    EDGE = 1e-3

    def params(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            black = self.normalize(torch.zeros_like(images[:1])).float()
            white = self.normalize(torch.ones_like(images[:1])).float()
        if not (torch.isfinite(black).all() and torch.isfinite(white).all()) or bool(((white - black) == 0).any()):
            return super().params(images)
        raw = ((images - black) / (white - black)).clamp(self.EDGE, 1 - self.EDGE)
        return self.inner.params(torch.logit(raw) / self.gain)


def make_parametrization(name: str = "pixel", valid_pixels: bool = False, model=None,
                         decay: float = 1.0) -> Parametrization:
    """The parametrisation called `name` (pixel, fourier, maco), squashed into valid pixels on request
    (which needs the model, for its input normalisation)."""
    check_choice("parametrization", name, PARAMETRIZATIONS)
    inner = {"pixel": Pixel, "fourier": lambda: Fourier(decay), "maco": Maco}[name]()
    if not valid_pixels:
        return inner
    if model is None:
        raise UserError("valid pixels need the model (for its input normalisation)", "valid pixels")
    return ValidPixels(inner, model_normalization(model))
