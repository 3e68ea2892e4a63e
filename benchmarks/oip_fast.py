"""The `--fast` OIP preset against the articles' rule, same process: quality reached and time.

Both runs compute the OIPs of every map of a layer (default Conv2D_3 of the default model)
from the same starts. "Live" maps fire on at least one test image. The figure of merit: the
share of live maps whose fast OIP reaches at least the articles' 600-step activation, and the
time ratio articles / fast (target: >= 95% of the live maps at <= 1/4 of the time). The runs
alternate (articles, fast, articles, fast, ...) and the medians are reported, with the
matrix-multiply floor of the work (benchmarks/floor.py).

Usage: .venv/bin/python benchmarks/oip_fast.py [--model DIR] [--layer Conv2D_3] [--repeats 2] [--threads 1]
         [--variant STEPS:RACE:STARTS ...]   (default: what `oip --fast` runs -- 95:15:2, two
         starts per map racing for 15 steps -- and the same schedule from one start, 95:0:1)
On a shared machine pin it (taskset -c 0) and quote the load average it prints.
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import os
import statistics
import time

import torch

from floor import Floor


def main() -> int:
    from cnnscope.data.mnist import load_mnist_for_model, to_tensor
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.optvis.ascent import RACE_STARTS, AscentSettings
    from cnnscope.optvis.oip import dataset_max, find_oips, map_objectives

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--layer", default="Conv2D_3")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", action="append", default=None, metavar="STEPS:RACE:STARTS")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model, config = load_model(args.model)
    targets = map_objectives(model, args.layer)
    live = dataset_max(model, targets, to_tensor(load_mnist_for_model(config).test_x))[0] > 0
    floor = Floor.measure(model, args.layer, batch=len(targets), threads=args.threads, backward="input")
    print(f"torch {torch.__version__}, threads {args.threads}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; {args.layer}: {len(targets)} maps, {int(live.sum())} live; medians of {args.repeats}")
    print(floor.header())
    runs = {"articles": (AscentSettings(), 1)}
    preset = AscentSettings.fast()
    for text in args.variant or [f"{preset.steps}:{preset.race}:{RACE_STARTS}", f"{preset.steps}:0:1"]:
        steps, race, starts = text.split(":")
        runs[f"fast {text}"] = (AscentSettings.fast(steps=int(steps), race=int(race)), int(starts))
    times: dict[str, list[float]] = {name: [] for name in runs}
    rates, results = [], {}
    for _ in range(args.repeats):
        for name, (settings, starts) in runs.items():
            started = time.perf_counter()
            results[name] = find_oips(model, targets, settings, restarts=starts)
            times[name].append(time.perf_counter() - started)
            rates.append(floor.remeasure())
    floor.gflops = statistics.median(rates)
    print(f"floor re-measured after every run: torch.mm {min(rates):.1f}..{max(rates):.1f} GFLOP/s, median "
          f"{floor.gflops:.1f} used below")
    articles = results["articles"]
    for name, run in results.items():
        seconds = statistics.median(times[name])
        losers = (run.restarts - 1) * len(targets) * (run.settings.race or run.settings.steps)  # at most
        image_steps = float(run.steps_used.sum() + len(targets) + losers)
        print(f"{name}: {seconds:6.1f} s, {int(run.reacted.sum())} reacted, mean {float(run.steps_used.float().mean()):.0f} "
              f"steps per map; {floor.describe(image_steps, seconds)}")
        if run is articles:
            continue
        reached = live & (run.final >= articles.final)
        short = ((run.final - articles.final) / articles.final.clamp_min(1e-6))[live & ~reached]
        ratio = statistics.median(times["articles"]) / seconds
        print(f"    live maps reaching the articles' 600-step value: {int(reached.sum())}/{int(live.sum())} = "
              f"{100 * float(reached.sum()) / float(live.sum()):.1f}% (target >= 95%)"
              + (f", the others fall short by {100 * float(-short.max()):.1f}..{100 * float(-short.min()):.1f}%"
                 if short.numel() else "") + f"; time ratio articles / fast {ratio:.2f}x (target >= 4x)")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
