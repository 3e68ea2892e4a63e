"""files: the one SHA-256 helper and the file hash built on it; the one write path on hostile file systems."""

from __future__ import annotations

import errno
import hashlib
import json

import pytest

from cnnscope.errors import UserError
from cnnscope.files import (
    atomic_path,
    check_output_file,
    check_output_folder,
    save_image,
    sha256_file,
    sha256_hex,
    write_json,
    write_text,
    written_together,
)
from disks import fill_disk, make_read_only, snapshot, temp_files, tiny_disk


def test_sha256_hex_hashes_the_concatenated_chunks():
    assert sha256_hex([b"ab", b"", b"c"]) == hashlib.sha256(b"abc").hexdigest()
    assert sha256_hex([]) == hashlib.sha256(b"").hexdigest()
    assert sha256_hex(iter([b"x"] * 3)) == hashlib.sha256(b"xxx").hexdigest()


def test_sha256_file_reads_the_whole_file_in_blocks(tmp_path):
    data = bytes(range(256)) * 10_000  # 2.5 MB: three 1 MiB blocks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# ---- the one write path on hostile file systems ----------------------------------------------


@pytest.fixture()
def disk(tmp_path):
    """A 1 MiB tmpfs with one earlier good file, old.json."""
    with tiny_disk(tmp_path / "disk", "1m") as folder:
        write_json(folder / "old.json", {"run": 1})
        yield folder


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_full_disk_is_a_one_line_error_and_keeps_the_earlier_file(disk):
    fill_disk(disk)
    before = snapshot(disk)
    with pytest.raises(UserError) as exc:
        write_json(disk / "old.json", {"run": 2, "pad": "x" * 10_000})
    assert one_line(exc) == f"cannot write {disk / 'old.json'}: No space left on device"
    with pytest.raises(UserError, match="No space left on device"):
        save_image(disk / "new.png", __import__("numpy").zeros((64, 64), "uint8"))
    assert snapshot(disk) == before and temp_files(disk) == []


def test_a_read_only_folder_is_a_one_line_error(disk):
    make_read_only(disk)
    with pytest.raises(UserError) as exc:
        write_text(disk / "old.json", "{}")
    assert one_line(exc) == f"cannot write {disk / 'old.json'}: Read-only file system"
    assert json.loads((disk / "old.json").read_text()) == {"run": 1}
    with pytest.raises(UserError, match="Read-only file system"):
        check_output_folder(disk / "new" / "deeper")


def test_a_parent_that_is_a_file_and_a_target_that_is_a_folder_are_refused(tmp_path):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError) as exc:
        write_text(tmp_path / "file" / "x.json", "{}")
    assert one_line(exc) == f"cannot write {tmp_path / 'file' / 'x.json'}: {tmp_path / 'file'} is not a folder (it is a file)"
    with pytest.raises(UserError, match="it is a folder"):
        write_text(tmp_path / "folder", "{}")
    with pytest.raises(UserError, match="is not a folder"):
        check_output_folder(tmp_path / "file" / "sub")
    with pytest.raises(UserError, match="it is not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(UserError, match="it is a folder"):
        check_output_file(tmp_path / "folder")
    assert (tmp_path / "file").read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]


def test_the_output_check_creates_nothing_and_accepts_new_folders(tmp_path):
    assert check_output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert check_output_file(tmp_path / "a" / "x.png") == tmp_path / "a" / "x.png"
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_found_before_the_work_starts(disk):
    fill_disk(disk)
    with pytest.raises(UserError) as exc:
        check_output_folder(disk / "out")
    assert one_line(exc) == f"cannot write to {disk / 'out'}: No space left on device"
    assert temp_files(disk) == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_or_failed_write_leaves_no_temporary_file(tmp_path, failure):
    (tmp_path / "x.txt").write_text("old")
    with pytest.raises(failure):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise failure()
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"] and (tmp_path / "x.txt").read_text() == "old"


def test_files_written_together_appear_all_or_none(disk):
    with written_together():
        write_text(disk / "a.txt", "a")
        assert not (disk / "a.txt").exists()  # renamed when the block ends
        write_text(disk / "b.txt", "b")
    assert (disk / "a.txt").read_text() == "a" and (disk / "b.txt").read_text() == "b"
    fill_disk(disk, keep=8192)
    before = snapshot(disk)
    with pytest.raises(UserError, match="No space left on device"):
        with written_together():
            write_text(disk / "a.txt", "A")  # fits
            write_text(disk / "c.txt", "C" * 100_000)  # does not
    assert snapshot(disk) == before and temp_files(disk) == []


def test_a_checkpoint_on_a_full_disk_is_a_one_line_error(disk, small_model):
    from cnnscope.nn.checkpoint import save_checkpoint

    fill_disk(disk, keep=16384)  # room for the folder and the config, not for the weights
    with pytest.raises(UserError) as exc:
        save_checkpoint(small_model, disk / "model")
    assert one_line(exc) == f"cannot write {disk / 'model' / 'model.safetensors'}: No space left on device"
    assert temp_files(disk) == []


def test_only_io_failures_become_user_errors():
    from cnnscope.files import write_failure

    assert write_failure(OSError(errno.ENOSPC, "No space left on device")) == "No space left on device"
    assert write_failure(RuntimeError('Error while serializing: IoError(Os { code: 30, kind: ReadOnlyFilesystem, '
                                      'message: "Read-only file system" })')) == "Read-only file system"
    assert write_failure(TypeError("not JSON serialisable: object")) is None
