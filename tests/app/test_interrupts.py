"""Ctrl+C on the real `cnnscope` program: at any moment it ends with the one line
"cnnscope: interrupted", exit code 130, and no temporary file in the output folder.

The moments: while torch is being imported (seen in the process's memory map), shortly after,
one second after the start, and during the work (after training's first epoch line, when the
epoch's checkpoint files are being written or the next epoch runs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from disks import temp_files

CNNSCOPE = Path(sys.executable).with_name("cnnscope")


def train_argv(out: Path) -> list[str]:
    return [str(CNNSCOPE), "train", "--out", str(out), "--epochs", "40", "--train-images", "200",
            "--test-images", "50", "--batch-size", "50", "--no-progress", "--threads", "1"]


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def torch_is_loading(process: subprocess.Popen) -> bool:
    maps = Path(f"/proc/{process.pid}/maps")
    return maps.exists() and "libtorch" in maps.read_text()


def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the moment to interrupt never came"
        time.sleep(0.005)


def interrupt(process: subprocess.Popen) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def assert_interrupted(code: int, err: str, folder: Path) -> None:
    assert (code, err) == (130, "cnnscope: interrupted\n")
    assert temp_files(folder) == []


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see when torch loads")
@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_ctrl_c_while_torch_is_imported(delay, tmp_path, cnnscope_home):
    process = start(train_argv(tmp_path / "run"))
    wait_until(lambda: torch_is_loading(process) or process.poll() is not None)
    time.sleep(delay)
    code, out, err = interrupt(process)
    assert_interrupted(code, err, tmp_path)


def test_ctrl_c_one_second_after_the_start(tmp_path, small_model_dir):
    process = start([str(CNNSCOPE), "oip", "--model", str(small_model_dir), "--steps", "100000", "--quiet",
                     "--out", str(tmp_path / "oip.png")])
    time.sleep(1.0)
    code, out, err = interrupt(process)
    assert_interrupted(code, err, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("after", [0.0, 0.3])
def test_ctrl_c_during_training_leaves_no_temporary_files(after, tmp_path, mnist, cnnscope_home):
    process = start(train_argv(tmp_path / "run"))
    line = ""
    while not line.startswith("epoch"):  # the first epoch's line: its checkpoint files are written next
        line = process.stdout.readline()
        assert line, "train ended before its first epoch"
    time.sleep(after)
    code, out, err = interrupt(process)
    assert_interrupted(code, err, tmp_path)
