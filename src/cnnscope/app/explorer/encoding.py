"""Results to compact JSON for the page: bytes as base64, floats rounded, maps as 8-bit pictures."""

from __future__ import annotations

import base64

import numpy as np

from cnnscope.figures.render import colormap_lut

COLORMAP = "viridis"  # the page's colour map (activation grids and OIP pictures)


def b64(array: np.ndarray) -> str:
    """The bytes of a uint8 array as base64 text."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode("ascii")


def rounded(values: np.ndarray, digits: int = 5) -> list[float]:
    """Values as a list of floats rounded to `digits` decimals."""
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def encode_layer(output: np.ndarray) -> dict:
    """One image's layer output -> compact JSON: per-map uint8 (min..max) for C x H x W, floats for units."""
    if output.ndim == 1:
        return {"shape": list(output.shape), "values": rounded(output)}
    low = output.min(axis=(1, 2))
    high = output.max(axis=(1, 2))
    span = np.where(high > low, high - low, 1.0)
    scaled = (output - low[:, None, None]) / span[:, None, None]
    data = np.rint(scaled * 255.0).astype(np.uint8)
    return {
        "shape": list(output.shape),
        "data": b64(data),
        "min": rounded(low),
        "max": rounded(high),
        "mean": rounded(output.mean(axis=(1, 2))),
    }


def colormap_table(name: str = COLORMAP) -> dict:
    """A colour map as the page uses it: {"name", "lut": base64 of 256 RGB triples}."""
    return {"name": name, "lut": b64(colormap_lut(name))}
