"""A sweep on Ray against the same runs one after another, in the same process.

Baseline: N tiny runs (default 4: seeds 0..3, 1 epoch on 2000 images) trained one after the
other with `run_training` and one torch thread. Then the same grid through `run_sweep` on a
local Ray with `--parallel` tasks at once (default 2), into a fresh folder. Ray's start-up is
measured on its own (init + the first trivial task + shutdown). Prints the wall times and the
ratio sweep / sequential; below 1 the sweep is faster.

    .venv/bin/python benchmarks/sweep_speed.py [--runs 4] [--parallel 2] [--train-images 2000]

The machine is shared: compare ratios from the same run and state the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from floor import Floor, plain_train_seconds_per_step

import cnnscope  # noqa: F401  (sets the OpenMP wait policy before torch loads)
from cnnscope.training.runs import run_training
from cnnscope.training.sweep import grid_runs, import_ray, run_sweep


def ray_start_up(parallel: int) -> float:
    """Seconds for a local Ray: init, one trivial task, shutdown."""
    ray = import_ray()
    started = time.perf_counter()
    ray.init(num_cpus=parallel, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.get(ray.remote(lambda: 0).remote())
    ray.shutdown()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=2000)
    args = parser.parse_args()
    grid = {"seed": list(range(args.runs)), "epochs": [1], "train_images": [args.train_images], "test_images": [1000]}
    runs = grid_runs(grid)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        for run in runs:
            run_training(replace(run.settings, threads=1), Path(folder) / "plain" / run.name, progress=False,
                         log=lambda line: None)
        sequential = time.perf_counter() - started
        start_up = ray_start_up(args.parallel)
        started = time.perf_counter()
        results = run_sweep(runs, Path(folder) / "sweep", parallel=args.parallel, log=lambda line: None)
        swept = time.perf_counter() - started
    assert all(r.status == "done" for r in results), [r.error for r in results]
    import torch

    from cnnscope.data.mnist import load_mnist
    from cnnscope.training.state import new_model

    settings = runs[0].settings
    torch.set_num_threads(1)
    model = new_model(settings, 0.13, 0.31)
    steps = args.runs * -(-args.train_images // settings.batch_size)
    plain = plain_train_seconds_per_step(model, load_mnist(), settings.batch_size, "adam", settings.lr) * steps
    floor = Floor.measure(model, None, batch=settings.batch_size, threads=1, backward="all")
    images = args.runs * args.train_images
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores; {args.runs} runs of 1 epoch on "
          f"{args.train_images} images")
    print(f"sequential run_training: {sequential:6.1f} s")
    print(f"sweep on local Ray ({args.parallel} at once): {swept:6.1f} s  (ratio {swept / sequential:.2f})")
    print(f"Ray start-up alone (init + first task + shutdown): {start_up:.1f} s")
    print(f"sweep without the start-up: ratio {(swept - start_up) / sequential:.2f}")
    print(f"plain eager loop, the same {steps} training steps on 1 thread (no evaluation, no files): {plain:6.1f} s")
    print(floor.header() + " (forward + input and weight gradients)")
    print(f"sequential: {floor.describe(images, sequential, plain)}")
    print(f"sweep ({args.parallel} at once, floor of one thread / {args.parallel}): "
          f"{floor.describe(images * 1.0 / args.parallel, swept, plain)}")


if __name__ == "__main__":
    main()
