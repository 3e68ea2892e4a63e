"""Where computations run: the device (chosen at run time, never a module-level global) and the
number of CPU threads."""

from __future__ import annotations

import contextlib
import functools
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


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity mask; all cores where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Usable cores that other processes are not keeping busy: `cores` minus the 1-minute load
    average, rounded, at least 1 (the load average counts the processes running or waiting to
    run; cnnscope asks before its own work starts)."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            load = 0.0
    return max(1, min(cores, round(cores - load)))


@functools.cache
def default_threads() -> int:
    """CPU threads for the long commands: the cores free when the first one asks (`free_cores`).

    Two threads that must meet at every step lose when another process holds one of the two
    cores (2-5x slower on the shared 2-core development machine: the README's thread table),
    and one thread leaves an idle second core unused (1.35x slower); so the count follows the
    load, and `--threads N` fixes it. Results are bitwise reproducible for the same thread count:
    training records the count it used in config.json. Chosen once per process, so a report's
    later sections are not slowed by the load of its own earlier ones.
    """
    return free_cores()


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
