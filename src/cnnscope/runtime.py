"""Where computations run: the device (chosen at run time, never a module-level global) and the
number of CPU threads."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch

from cnnscope.errors import UserError, check_choice, check_whole

T = TypeVar("T")


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


BUSY_LOAD = 1.5  # load average per core from which cnnscope leaves cores to the other processes


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """The threads to use: all usable `cores` while the 1-minute load average stays below
    `BUSY_LOAD` x `cores`; above it, the cores the other processes leave, `cores - (load - cores)`,
    rounded, at least 1 (the load average counts the processes running or waiting to run;
    cnnscope asks before its own work starts)."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            load = 0.0
    if load < BUSY_LOAD * cores:
        return cores
    return max(1, min(cores, round(2 * cores - load)))


@functools.cache
def default_threads() -> int:
    """CPU threads for the long commands (`free_cores`, asked once per process, so a report's
    later sections are not slowed by the load of its own earlier ones); `--threads N` fixes it.

    The costs of a wrong guess are lopsided (benchmarks/threads.py on the 2-core development
    machine, medians of 3): on a quiet machine one thread was 1.23x (OIPs) and 1.53x (training)
    slower than two, while with one or two competing processes two threads were only 1.01-1.11x
    slower than one; at a load average of 4.5, two threads trained 2.3x slower (the README's
    thread table). A lagging load average (a process that just ended) should not cost the big
    factor, so every core is used until the machine is clearly oversubscribed. Results are
    bitwise reproducible for the same thread count: training records the count in config.json.
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


def side_by_side(jobs: Sequence[Callable[[], T]], workers: int | None = None,
                 device: torch.device | str | None = None) -> list[T]:
    """Call independent jobs on `workers` Python threads (default `default_threads()`), torch
    running one thread in each, and return their results in order.

    Small ascents scale badly over torch's own threads; their kernels release the GIL, so whole
    jobs side by side use the cores better: four OIP runs of the demo report took 1.29-1.33x less
    wall time than one after the other with two torch threads (2-core machine). Each result is
    bit for bit what the job gives alone on one thread. On a GPU, or with one worker, the jobs
    run one after the other. The jobs share the caller's objects, so they may only read them
    (a model must stay in eval mode: `map_batches` switches a model's mode while it runs).
    """
    workers = default_threads() if workers is None else int(workers)
    if workers <= 1 or len(jobs) <= 1 or torch.device(device or "cpu").type != "cpu":
        return [job() for job in jobs]
    with using_threads(1), concurrent.futures.ThreadPoolExecutor(min(workers, len(jobs))) as pool:
        return list(pool.map(lambda job: job(), jobs))
