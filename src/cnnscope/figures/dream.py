"""Dream pictures: the panel of a dream (photo, dream, what changed) and GIF frames of its
rounds or octaves. Pure functions returning RGB uint8 arrays."""

from __future__ import annotations

import numpy as np

from cnnscope.data.photos import Photo, to_uint8
from cnnscope.figures.render import colorize, stack, text_block
from cnnscope.optvis.dream import NETWORK_SIZE, DreamResult


def _fit_height(picture: np.ndarray, height: int) -> np.ndarray:
    """Resize an RGB picture to `height` (bicubic; nearest for small pixel-art like 28 x 28)."""
    from PIL import Image

    h, w = picture.shape[:2]
    if h == height:
        return picture
    if h <= NETWORK_SIZE:  # keep network pixels crisp
        factor = max(1, height // h)
        picture = np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)
        h, w = picture.shape[:2]
        if h == height:
            return picture
        resample = Image.Resampling.NEAREST
    else:
        resample = Image.Resampling.BICUBIC
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(picture).resize((width, height), resample))


def _rgb(image) -> np.ndarray:
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    return array if array.ndim == 3 else np.repeat(array[..., None], 3, axis=2)


def panel_cells(photo: Photo, result: DreamResult, color: bool = True) -> list[tuple[str, np.ndarray]]:
    """(caption, RGB picture) for each part of the panel, before sizing."""

    cells = [("photo", _rgb(photo.original(color=color)))]
    if result.settings.mode == "downscale" and result.pattern is not None:
        cells.append(("28x28 dream (viridis)", colorize(result.pattern, "viridis")))
        cells.append(("28x28 dream (gray)", colorize(result.pattern, "gray")))
        blurred = to_uint8(result.blurred.clamp(0, 1).numpy())
        cells.append(("upscaled dream", np.repeat(blurred[..., None], 3, axis=2)))
        cells.append((f"detail re-added, width {result.settings.width:g}", _rgb(photo.compose(result.luminance, color))))
    else:
        cells.append(("dream", _rgb(photo.compose(result.luminance, color))))
        start = photo.luminance if result.raw.shape[1] == 1 else photo.rgb()  # a colour network dreamed in RGB
        change = (result.raw - start.reshape(result.raw.shape).to(result.raw.dtype))[0].mean(dim=0)
        limit = max(float(change.abs().max()), 1e-6)
        cells.append(("change (red: brighter)", colorize(change, "seismic", -limit, limit)))
    return cells


def render_panel(photo: Photo, result: DreamResult, color: bool = True, height: int = 200) -> np.ndarray:
    """The dream's panel as an RGB array: captioned pictures side by side under a title line."""

    s = result.settings
    if s.mode == "downscale":
        how = f"28x28, {s.rounds} rounds x {s.steps} steps"
    elif s.mode == "octaves":
        how = f"{s.octaves} octaves x {s.steps} steps, scale {s.octave_scale:g}, px {s.px:g}"
    else:
        how = f"full resolution, {s.rounds} rounds x {s.steps} steps" + (f", {result.tile}px tiles" if result.tile else "")
    values = result.values
    trend = f"; objective {values[0]:.3g} -> {values[-1]:.3g}" if values else ""
    title = text_block(f"{result.objective} dreaming ({s.mode}: {how}){trend}", size=14)
    parts = []
    for caption, picture in panel_cells(photo, result, color):
        picture = _fit_height(picture, height)
        label = text_block(caption, size=12, width=picture.shape[1])
        parts.append(stack([label, picture], axis="v", gap=2)[0])
    row = stack(parts, axis="h", gap=6)[0]
    return stack([title, row], axis="v", gap=4)[0]


def gif_frames(photo: Photo, result: DreamResult, color: bool = True, max_side: int = 384) -> list[np.ndarray]:
    """RGB frames for a GIF: the photo, then the image after each round / octave."""
    frames = []
    scale = min(1.0, max_side / max(photo.size))
    for frame in result.frames:
        picture = _rgb(photo.compose(frame, color))
        if scale < 1.0:
            picture = _fit_height(picture, max(1, round(picture.shape[0] * scale)))
        frames.append(picture)
    return frames
