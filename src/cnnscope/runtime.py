"""Where computations run: the device (chosen at run time, never a module-level global) and the
number of CPU threads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from cnnscope.errors import UserError, check_choice, check_whole


def pick_device(requested: str | None = None) -> torch.device:
    """`None`/"auto" picks CUDA when present, else the CPU; "cpu"/"cuda" force one."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_choice("device", requested, ["auto", "cpu", "cuda"])
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return torch.device(requested)


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer); the CPU for a model without either."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def default_threads() -> int:
    """CPU threads for the long commands: 1 on machines with 2 cores or fewer, else torch's default.

    On the shared 2-core development machine one thread trained 2-5x faster than two
    (benchmarks/train_speed.py): two threads must run at the same moment to finish a step,
    which rarely happens when other processes want the cores too. The count is fixed per
    machine (not chosen by load), because results are bitwise reproducible only for the
    same thread count.
    """
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else torch.get_num_threads()


@contextlib.contextmanager
def using_threads(count: int | None) -> Iterator[int]:
    """Run the block with `count` torch CPU threads (None: unchanged), then restore the setting."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield before
        return
    torch.set_num_threads(check_whole("threads", count, minimum=1))
    try:
        yield int(count)
    finally:
        torch.set_num_threads(before)
