"""files: the one SHA-256 helper and the file hash built on it."""

from __future__ import annotations

import hashlib

from cnnscope.files import sha256_file, sha256_hex


def test_sha256_hex_hashes_the_concatenated_chunks():
    assert sha256_hex([b"ab", b"", b"c"]) == hashlib.sha256(b"abc").hexdigest()
    assert sha256_hex([]) == hashlib.sha256(b"").hexdigest()
    assert sha256_hex(iter([b"x"] * 3)) == hashlib.sha256(b"xxx").hexdigest()


def test_sha256_file_reads_the_whole_file_in_blocks(tmp_path):
    data = bytes(range(256)) * 10_000  # 2.5 MB: three 1 MiB blocks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
