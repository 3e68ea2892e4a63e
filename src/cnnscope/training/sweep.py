"""Sweeps: a grid of training runs (seeds, recipes, any `TrainSettings` field) as Ray tasks.

We do not schedule anything ourselves: every run is one Ray task (one CPU, one torch thread)
that calls `run_training` into its own folder under the sweep folder. Without an address Ray
starts on this machine with as many CPUs as runs may go at once, and is shut down at the end;
with `address` the tasks go to that cluster (every node needs cnnscope and the data).

A run whose folder holds a finished checkpoint is skipped; one with a resume state is
continued (`run_training(resume=True)`), so re-running an interrupted sweep finishes it. A
failing run is reported with its error and does not stop the others. At the end `sweep.csv`
and `sweep.json` hold every run's settings and metrics. Ray is an optional dependency
(`pip install cnnscope[cluster]`).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from cnnscope.errors import UserError, check_whole
from cnnscope.files import check_output_folder, write_json, write_text
from cnnscope.nn.checkpoint import CONFIG, TRAIN_STATE, read_config
from cnnscope.training.settings import TrainSettings, recipe_settings, settings_from_dict

INSTALL_HINT = "cnnscope sweep needs Ray: pip install 'cnnscope[cluster]' (or pip install 'ray>=2.9')"
TABLE_CSV = "sweep.csv"
TABLE_JSON = "sweep.json"
RUN_LOG = "train.log"
SETTING_NAMES = tuple(f.name for f in fields(TrainSettings))


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its folder name under the sweep folder and its settings."""

    name: str
    settings: TrainSettings


def grid_runs(grid: dict[str, Sequence], base: TrainSettings | None = None) -> list[SweepRun]:
    """Every combination of the grid's values, as runs named by the values that vary.

    Args:
        grid: `TrainSettings` field -> values, e.g. {"seed": [0, 1], "lr": [1e-3, 2e-3]};
            "recipe" picks each run's starting settings (the other fields override them).
        base: the settings the grid changes when it has no "recipe" (default: the default recipe).

    Returns:
        The runs, in grid order (the last field varies fastest); each validated.
    """
    for key, values in grid.items():
        if key not in SETTING_NAMES:
            raise UserError(f"unknown training option {key!r} in the grid; allowed: {', '.join(SETTING_NAMES)}",
                            "grid")
        if not isinstance(values, list | tuple) or not values:
            raise UserError(f"grid option {key!r} needs a non-empty list of values, got {values!r}", "grid")
    varying = [key for key, values in grid.items() if len(values) > 1] or list(grid)[:1]
    runs = []
    for combination in itertools.product(*grid.values()):
        chosen = dict(zip(grid, combination, strict=True))
        settings = recipe_settings(chosen["recipe"]) if "recipe" in chosen else (base or recipe_settings("default"))
        changes = {k: v for k, v in chosen.items() if k != "recipe"}
        settings = replace(settings, **changes).validate()
        runs.append(SweepRun(run_name({k: chosen[k] for k in varying}), settings))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise UserError("the grid gives two runs the same folder name; make its values distinct", "grid")
    return runs


def run_name(values: dict) -> str:
    """A folder name from the values that vary: {"seed": 0, "lr": 0.001} -> "seed-0_lr-0.001"."""
    parts = [f"{key}-{value:g}" if isinstance(value, float) else f"{key}-{value}" for key, value in values.items()]
    return re.sub(r"[^A-Za-z0-9._-]", "-", "_".join(parts)) or "run"


@dataclass
class RunResult:
    """How a run of the sweep ended: done, skipped (finished before), or failed with an error."""

    run: SweepRun
    status: str
    error: str = ""
    seconds: float = 0.0


def run_sweep(runs: Sequence[SweepRun], out: str | os.PathLike, *, data: str | os.PathLike | None = None,
              parallel: int | None = None, address: str | None = None,
              log: Callable[[str], None] = print) -> list[RunResult]:
    """Train every run as a Ray task into `out/<run name>`, then write the table of all runs.

    Args:
        runs: the runs (see `grid_runs`).
        out: the sweep folder.
        data: mnist.npz or a folder of IDX files (None: the default download), on every node.
        parallel: runs at once (default: the CPU count locally, unlimited on a cluster).
        address: a Ray cluster's address ("auto", "ray://host:10001", ...); None starts Ray here.
        log: receives the progress lines.

    Returns:
        One result per run, in the order of `runs`.
    """
    out = Path(out)
    check_output_folder(out)
    if parallel is not None:
        check_whole("parallel", parallel, minimum=1)
    ray = import_ray()
    runs = [replace(run, settings=replace(run.settings, threads=run.settings.threads or 1)) for run in runs]
    todo, results = _plan(runs, out)
    started_here = _start_ray(ray, address, parallel) if todo else False
    home = os.environ.get("CNNSCOPE_HOME") if address is None else None
    try:
        if todo:
            results.update(_run_tasks(ray, todo, out, data, parallel, home, log))
    finally:
        if started_here:
            ray.shutdown()
    ordered = [results[run.name] for run in runs]
    write_tables(ordered, out)
    return ordered


def import_ray():
    """The `ray` module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT, "address") from None
    return ray


def _plan(runs: Sequence[SweepRun], out: Path) -> tuple[list[tuple[SweepRun, bool]], dict[str, RunResult]]:
    """The runs to start (with whether each resumes) and the results known already (skipped)."""
    from cnnscope.training.runs import is_complete_checkpoint

    todo, known = [], {}
    for run in runs:
        folder = out / run.name
        stored = _stored_settings(folder)
        if stored is not None and stored != run.settings:
            known[run.name] = RunResult(run, "failed", f"{folder} holds a run with other settings; "
                                                       "remove it or sweep into another folder")
        elif is_complete_checkpoint(folder):
            known[run.name] = RunResult(run, "skipped")
        else:
            todo.append((run, stored is not None and (folder / TRAIN_STATE).exists()))
    return todo, known


def _stored_settings(folder: Path) -> TrainSettings | None:
    """The settings of the run saved in `folder` (None if there is none or they are unreadable)."""
    if not (folder / CONFIG).exists():
        return None
    try:
        return settings_from_dict(read_config(folder).get("settings") or {})
    except (UserError, TypeError):
        return None


def _start_ray(ray, address: str | None, parallel: int | None) -> bool:
    """Connect to the cluster at `address`, or start Ray here quietly; True if we started it."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    if address is not None:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=parallel or os.cpu_count() or 1, **quiet)
    return True


def _run_tasks(ray, todo, out: Path, data, limit: int | None, home: str | None, log) -> dict[str, RunResult]:
    """Start the tasks (at most `limit` at once), collect them as they finish, log progress."""
    task = ray.remote(num_cpus=1, max_retries=0)(train_run)
    waiting = list(todo)
    running: dict = {}
    results: dict[str, RunResult] = {}
    total = len(todo)
    while waiting or running:
        while waiting and (limit is None or len(running) < limit):
            run, resume = waiting.pop(0)
            ref = task.remote(run.settings, str(out / run.name), None if data is None else str(data), resume, home)
            running[ref] = (run, resume, time.perf_counter())
            log(f"  started {run.name}{' (resuming)' if resume else ''}")
        [ready], _ = ray.wait(list(running), num_returns=1)
        run, resume, started = running.pop(ready)
        try:
            error = ray.get(ready)
        except Exception as exc:  # a worker that died, a Ray error: report it, go on
            error = _first_line(getattr(exc, "cause", None) or exc)
        results[run.name] = RunResult(run, "failed" if error else "done", error or "", time.perf_counter() - started)
        failed = sum(r.status == "failed" for r in results.values())
        line = f"[{len(results) - failed}/{total} done, {len(running)} running, {failed} failed] {run.name}"
        log(f"{line}: failed: {error}" if error else f"{line}: done in {results[run.name].seconds:.0f} s")
    return results


def train_run(settings: TrainSettings, folder: str, data: str | None, resume: bool, home: str | None) -> str:
    """One sweep task: train (or resume) into `folder`; the log goes to train.log there.

    Args:
        settings: the run's settings (the sweep gives them one torch thread).
        folder: the run's checkpoint folder.
        data: mnist.npz or a folder of IDX files; None for the default.
        resume: continue the run saved in `folder`.
        home: CNNSCOPE_HOME for the worker (local sweeps pass the driver's).

    Returns:
        "" on success, else the error's first line.
    """
    if home is not None:
        os.environ["CNNSCOPE_HOME"] = home
    from cnnscope.training.runs import run_training

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / RUN_LOG, "a", encoding="utf-8") as log_file:
            def log(line: str) -> None:
                log_file.write(line + "\n")
                log_file.flush()

            run_training(None if resume else settings, folder, data=data, resume=resume, progress=False, log=log,
                         force=not resume)  # the sweep checked the folder's settings
    except Exception as exc:  # every error becomes the run's one line; the others go on
        return _first_line(exc)
    return ""


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and not isinstance(exc, UserError) else (text[0] if text else type(exc).__name__)


# ---- the table -------------------------------------------------------------------------------
def table_rows(results: Sequence[RunResult], out: Path) -> list[dict]:
    """One row per run: name, status, error, every setting, and the final metrics if it has any."""
    rows = []
    for result in results:
        row = {"run": result.run.name, "status": result.status, "error": result.error,
               **asdict(result.run.settings)}
        folder = out / result.run.name
        if (folder / CONFIG).exists() and result.status != "failed":
            config = read_config(folder)
            row.update({"epochs_done": config.get("epoch"), **(config.get("metrics") or {})})
        rows.append(row)
    return rows


def write_tables(results: Sequence[RunResult], out: Path) -> tuple[Path, Path]:
    """Write sweep.csv and sweep.json (every run's settings and metrics) into `out`."""
    rows = table_rows(results, out)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.mkdir(parents=True, exist_ok=True)
    return (write_text(out / TABLE_CSV, buffer.getvalue()),
            write_json(out / TABLE_JSON, {"kind": "cnnscope-sweep/1", "runs": rows}))
