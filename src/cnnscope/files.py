"""Atomic file writes (write to a temporary file in the same folder, then rename), and the check
that an output folder can be written before any work starts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from cnnscope.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def save_image(path: str | os.PathLike, image, **save_kwargs) -> Path:
    """Save a PIL image (or uint8 array) atomically; the format comes from the suffix."""
    import numpy as np
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=_format_for(path), **save_kwargs)
    return path


def save_figure(path: str | os.PathLike, figure, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path


def save_gif(path: str | os.PathLike, frames, duration_ms: int = 60, loop: int = 0) -> Path:
    """Write RGB frames (H x W x 3 uint8 arrays) as an animated GIF, atomically."""
    from PIL import Image

    if not frames:
        raise UserError("no frames to write; the animation is empty", "frames")
    pictures = [Image.fromarray(frame) for frame in frames]
    path = Path(path)
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=int(duration_ms), loop=loop)
    return path


def check_output_folder(folder: Path) -> Path:
    """`folder` if it is (or can become) a writable folder, else a UserError; creates nothing."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output folder {folder} exists and is not a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {folder}: {existing} is not a writable folder")
    return folder


def sha256_hex(chunks: Iterable[bytes]) -> str:
    """The SHA-256 of the concatenated `chunks`, as 64 hex digits: the one hash of the library.

    Args:
        chunks: byte strings, hashed in order (a file's blocks, arrays' bytes, encoded text).

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (read in 1 MiB blocks), as 64 hex digits."""
    with open(path, "rb") as handle:
        return sha256_hex(iter(lambda: handle.read(1 << 20), b""))


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}.get(suffix, "PNG")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().cpu().tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
