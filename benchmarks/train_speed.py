"""Training speed on the CPU: what helps, measured against plain PyTorch defaults in the same run.

Part 1 (always): training-step throughput (images/s) of several set-ups on the same real
MNIST images, measured in interleaved rounds (medians reported), each in a fresh worker
process because OMP_WAIT_POLICY must be set before torch is loaded:

  baseline        plain PyTorch: NCHW (contiguous) weights, batch 64 (the articles'), torch's
                  default thread count, default OpenMP wait policy
  channels_last   the same with channels_last weights
  +batch 128/256  channels_last with bigger batches (the default recipe uses 128)
  threads 1       channels_last, batch 128, one thread
  passive         channels_last, batch 128, OMP_WAIT_POLICY=PASSIVE (threads sleep instead of
                  spinning; matters a lot when other processes share the cores)
  compile         torch.compile on top (only with --compile; needs a C++ compiler)

plus inference throughput for evaluation batch sizes 100 .. 10000.

Part 2 (unless --no-recipe): trains the recipe (default: `default`) in full with the chosen
settings and prints test accuracy, wall seconds and images per second.

    .venv/bin/python benchmarks/train_speed.py                 # both parts
    .venv/bin/python benchmarks/train_speed.py --no-recipe     # speed table only (~2 min)

The machine is shared: report ratios (same run, interleaved) and state the load average.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time

IMAGES_PER_MEASUREMENT = 5120

TRAIN_SETUPS = [
    # name, memory format, batch, threads (None = torch default), wait policy (None = libgomp's default)
    ("baseline", "contiguous", 64, None, None),
    ("channels_last", "channels_last", 64, None, None),
    ("channels_last +batch 128", "channels_last", 128, None, None),
    ("channels_last +batch 256", "channels_last", 256, None, None),
    ("channels_last +batch 128, 1 thread", "channels_last", 128, 1, None),
    ("baseline, passive wait", "contiguous", 64, None, "PASSIVE"),
    ("channels_last, passive wait", "channels_last", 64, None, "PASSIVE"),
    ("channels_last +batch 128, passive wait", "channels_last", 128, None, "PASSIVE"),
    ("channels_last +batch 256, passive wait", "channels_last", 256, None, "PASSIVE"),
    ("channels_last +batch 128, passive, 1 thread", "channels_last", 128, 1, "PASSIVE"),
]
# what `cnnscope train` does by default (see cnnscope.train.default_threads)
CHOSEN = ("channels_last +batch 128, passive, 1 thread" if (os.cpu_count() or 1) <= 2
          else "channels_last +batch 128, passive wait")
EVAL_BATCHES = (50, 100, 250, 1000, 10000)


def worker(setups: list[dict], compile_model: bool) -> list[dict]:
    """Measure each set-up in this process; returns images/s per set-up.

    torch is imported before cnnscope on purpose: cnnscope sets OMP_WAIT_POLICY=PASSIVE
    when it is imported first, and the baseline must see the OpenMP default.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from cnnscope.data import load_mnist, to_tensor
    from cnnscope.train import TrainSettings, new_model

    mnist = load_mnist()
    x_all = to_tensor(mnist.train_x[:20000])
    y_all = torch.from_numpy(mnist.train_y[:20000].astype(np.int64))
    default_threads = torch.get_num_threads()
    results = []
    for setup in setups:
        torch.set_num_threads(setup["threads"] or default_threads)
        if setup["kind"] == "eval":
            model = new_model(TrainSettings(), 0.13, 0.31).to(memory_format=torch.channels_last).eval()
            test = to_tensor(mnist.test_x)
            with torch.no_grad():
                model(test[:100])
                started = time.perf_counter()
                for start in range(0, len(test), setup["batch"]):
                    model(test[start : start + setup["batch"]])
            results.append({**setup, "images_per_second": len(test) / (time.perf_counter() - started)})
            continue
        model = new_model(TrainSettings(), 0.13, 0.31)
        if setup["format"] == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        step_model = torch.compile(model) if setup.get("compile") and compile_model else model
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        batch = setup["batch"]
        steps = max(5, IMAGES_PER_MEASUREMENT // batch)
        for step in range(steps + 3):  # 3 warm-up steps
            if step == 3:
                started = time.perf_counter()
            index = torch.randint(0, len(y_all), (batch,), generator=generator)
            loss = F.cross_entropy(step_model(x_all[index]), y_all[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        results.append({**setup, "images_per_second": steps * batch / (time.perf_counter() - started)})
    return results


def run_round(setups: list[dict], compile_model: bool) -> list[dict]:
    """Run the set-ups in worker processes grouped by OpenMP wait policy (order kept)."""
    results = []
    for policy in dict.fromkeys(s["policy"] for s in setups):
        group = [s for s in setups if s["policy"] == policy]
        env = dict(os.environ)
        env.pop("OMP_WAIT_POLICY", None)
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        command = [sys.executable, __file__, "--worker", json.dumps(group)] + (["--compile"] if compile_model else [])
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        results += json.loads(output.strip().splitlines()[-1])
    return results


def measure(rounds: int, compile_model: bool) -> dict[str, float]:
    setups = [{"kind": "train", "name": n, "format": f, "batch": b, "threads": t, "policy": p}
              for n, f, b, t, p in TRAIN_SETUPS]
    if compile_model:
        setups.append({"kind": "train", "name": "channels_last +batch 128, passive, compiled", "format": "channels_last",
                       "batch": 128, "threads": None, "policy": "PASSIVE", "compile": True})
    setups += [{"kind": "eval", "name": f"eval batch {b}", "format": "channels_last", "batch": b, "threads": None,
                "policy": "PASSIVE"} for b in EVAL_BATCHES]
    samples: dict[str, list[float]] = {s["name"]: [] for s in setups}
    for number in range(rounds):
        ordered = setups if number % 2 == 0 else setups[::-1]  # alternate order against drift
        for result in run_round(ordered, compile_model):
            samples[result["name"]].append(result["images_per_second"])
        print(f"  round {number + 1}/{rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    return {name: statistics.median(values) for name, values in samples.items()}


def train_recipe(recipe: str, threads: int | None) -> dict:
    from dataclasses import replace

    from cnnscope.data import load_mnist
    from cnnscope.train import recipe_settings, train

    settings = replace(recipe_settings(recipe), threads=threads)
    started = time.perf_counter()
    mnist = load_mnist(split=settings.split, seed=settings.split_seed)
    state = train(settings, mnist, progress=False)
    wall = time.perf_counter() - started
    images = sum(r.images for r in state.history)
    return {"recipe": recipe, "epochs": state.epoch, "test_accuracy": state.history[-1].test_accuracy,
            "wall_seconds": wall, "images_per_second": images / sum(r.seconds for r in state.history)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--no-recipe", action="store_true", help="skip the full training run")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    parser.add_argument("--threads", type=int, default=None, help="threads for the recipe run (default: as cnnscope train)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker), args.compile)))
        return
    importlib.import_module("cnnscope")  # sets OMP_WAIT_POLICY=PASSIVE before torch loads, as the CLI does
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, default threads {torch.get_num_threads()}, "
          f"load average at start {os.getloadavg()[0]:.1f} (shared machine: compare ratios)")
    medians = measure(args.rounds, args.compile)
    base = medians["baseline"]
    print(f"\ntraining steps (Adam, real MNIST), median of {args.rounds} interleaved rounds:")
    for name, rate in medians.items():
        if not name.startswith("eval"):
            print(f"  {name:<44} {rate:8.0f} img/s   x{rate / base:.2f} vs baseline")
    eval_base = medians[f"eval batch {EVAL_BATCHES[0]}"]
    print("inference (evaluation of the 10000 test images):")
    for batch in EVAL_BATCHES:
        rate = medians[f"eval batch {batch}"]
        print(f"  {'eval batch ' + str(batch):<44} {rate:8.0f} img/s   x{rate / eval_base:.2f} vs batch {EVAL_BATCHES[0]}")
    chosen = medians[CHOSEN]
    print(f"\nchosen settings ({CHOSEN}) vs plain defaults: x{chosen / base:.2f}")
    if not args.no_recipe:
        print(f"\ntraining recipe {args.recipe!r} in full (load average {os.getloadavg()[0]:.1f}) ...", flush=True)
        result = train_recipe(args.recipe, args.threads)
        print(f"recipe {result['recipe']}: {result['epochs']} epochs, test accuracy {100 * result['test_accuracy']:.2f}%, "
              f"wall {result['wall_seconds']:.0f} s, {result['images_per_second']:.0f} training images/s "
              f"(load average at end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
