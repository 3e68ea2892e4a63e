"""Atomic file writes (write to a temporary file in the same folder, flush it to the disk, then
rename), the check that an output location can be written before any work starts, and groups
of files that appear together or not at all.

Every file cnnscope writes goes through `atomic_path`: a failed write (full disk, read-only
folder, a parent that is a file, a target that is a folder) or Ctrl+C removes the temporary
file, leaves the previous file untouched and, for an OS error, raises a one-line `UserError`
that names the path and the cause.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from cnnscope.errors import UserError

# the temporary files of the innermost `written_together` block: (temp path, final path)
_pending_renames: contextvars.ContextVar[list[tuple[Path, Path]] | None] = contextvars.ContextVar(
    "cnnscope_pending_renames", default=None)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success flush it to the disk and rename it onto `path`.

    On any failure the temporary file is removed and `path` keeps its previous content; an OS
    error (of this function or of the code writing to the temporary path) becomes a UserError
    naming `path` and the cause. Inside `written_together`, the rename waits for the block's end.
    """
    path = Path(path)
    tmp_path = None
    try:
        if path.is_dir():
            raise UserError(f"cannot write {path}: it is a folder")
        blocking = _nearest_existing(path.parent)
        if not blocking.is_dir():
            raise UserError(f"cannot write {path}: {blocking} is not a folder (it is a file)")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(_make_temp_file(path))
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        _flush_to_disk(tmp_path)
        pending = _pending_renames.get()
        if pending is not None:
            pending.append((tmp_path, path))
            tmp_path = None  # the group renames or removes it
        else:
            os.replace(tmp_path, path)
            tmp_path = None
    except UserError:
        raise
    except Exception as exc:
        cause = write_failure(exc)
        if cause is None:
            raise
        raise UserError(f"cannot write {path}: {cause}") from None
    finally:
        if tmp_path is not None:
            _remove_quietly(tmp_path)


def _make_temp_file(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    return tmp


def _flush_to_disk(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_failure(exc: BaseException) -> str | None:
    """The one-line cause of a failed write, or None if `exc` is no I/O failure (a bug to show).

    An OSError gives its message ("No space left on device"); safetensors reports I/O errors as
    `SafetensorError: ... IoError(Os { code: 28, ... })`, whose errno is read from the text.
    """
    if isinstance(exc, OSError):
        return exc.strerror or str(exc).splitlines()[0]
    found = re.search(r"Os \{ code: (\d+)", str(exc))
    if found:
        return os.strerror(int(found.group(1)))
    return None


@contextlib.contextmanager
def written_together() -> Iterator[None]:
    """Files written in this block appear together when it ends; if anything in it fails (or is
    interrupted), none of them does: their temporary files are removed and the previous files
    stay as they were. Nested blocks join the outer one."""
    if _pending_renames.get() is not None:
        yield
        return
    pending: list[tuple[Path, Path]] = []
    token = _pending_renames.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            _remove_quietly(tmp)
        raise
    finally:
        _pending_renames.reset(token)
    _rename_all(pending)


def _rename_all(pending: list[tuple[Path, Path]]) -> None:
    for done, (tmp, path) in enumerate(pending):
        try:
            os.replace(tmp, path)
        except BaseException as exc:
            for rest, _ in pending[done:]:
                _remove_quietly(rest)
            if isinstance(exc, OSError):
                raise UserError(f"cannot write {path}: {write_failure(exc)}") from None
            raise


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
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    finally:
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


def check_output_folder(folder: str | os.PathLike) -> Path:
    """`folder` if it is (or can become) a folder cnnscope can write to, else a one-line UserError.

    Checked before any long work starts: the folder (or its nearest existing parent) must be a
    folder, and a probe file of one byte must be creatable in it (this catches read-only file
    systems and full disks, also for root, whom permissions do not stop). Creates nothing that stays.
    """
    folder = Path(folder)
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        if existing == folder:
            raise UserError(f"cannot write to {folder}: it is not a folder (it is a file)")
        raise UserError(f"cannot create the folder {folder}: {existing} is not a folder (it is a file)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cnnscope-probe.", suffix=".tmp", dir=existing)
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
            _remove_quietly(Path(probe))
    except OSError as exc:
        raise UserError(f"cannot write to {folder}: {write_failure(exc)}") from None
    return folder


def check_output_file(path: str | os.PathLike) -> Path:
    """`path` if a file can be written there (not an existing folder; its folder writable), else UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; give a file name")
    check_output_folder(path.parent)
    return path


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its nearest parent that exists."""
    while not _exists(path) and path != path.parent:
        path = path.parent
    return path


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


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
