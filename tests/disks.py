"""Hostile file systems for the tests of the write path: a tiny tmpfs (real ENOSPC), made
read-only by a remount (real EROFS, which stops root too), filled up to a chosen free space.

Mounting needs root and a kernel that allows it (a container may not); `tiny_disk` skips the
test with the reason otherwise. Import as `from disks import tiny_disk, ...`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

FILLER = ".filler"


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str = "4m"):
    """A tmpfs of `size` mounted on `folder` (created) for the block; skips unless root can mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root (real full-disk and read-only errors)")
    folder.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def make_read_only(folder: Path) -> None:
    done = _mount("-o", "remount,ro", str(folder))
    assert done.returncode == 0, done.stderr


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill_disk(folder: Path, keep: int = 0) -> None:
    """Write a filler file in `folder` so that about `keep` bytes stay free (0: none at all)."""
    with open(folder / FILLER, "ab", buffering=0) as handle:
        handle.write(b"\0" * max(free_bytes(folder) - keep, 0))
        while keep == 0:
            try:
                handle.write(b"\0" * 4096)
            except OSError:
                break
    assert free_bytes(folder) <= keep + 4096


def temp_files(folder: Path) -> list[str]:
    """Leftover temporary files (of atomic writes and probes) anywhere below `folder`."""
    return sorted(str(p) for p in folder.rglob("*") if ".tmp" in p.name)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (but the filler) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != FILLER}
