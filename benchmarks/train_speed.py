"""Training speed on the CPU: what helps, measured against plain PyTorch defaults in the same run.

Part 1 (always): training-step throughput (images/s, Adam, real MNIST) of several set-ups.
Every measurement runs in its own fresh worker process (OMP_WAIT_POLICY must be set before
torch loads), the set-ups are measured in a shuffled order in every round, and the medians
over the rounds are reported, so a change of the machine's load hits all set-ups alike.

  baseline   plain PyTorch: NCHW (contiguous) weights, batch 64 (the articles'), torch's
             default thread count, OpenMP's default wait policy (threads spin a while)
  variants   channels_last weights, batch 128/256, one thread, OMP_WAIT_POLICY=PASSIVE
             (waiting threads sleep instead of spinning), torch.compile (--compile only)
  chosen     what `cnnscope train` does: TrainSettings' memory format, batch 128, its
             thread count (cnnscope.runtime.default_threads()), PASSIVE (set by cnnscope)

plus inference throughput for evaluation batch sizes 50 .. 10000 (as `cnnscope` runs it).

Part 2 (unless --no-recipe): trains the recipe (default: `default`) in full with the chosen
settings and prints test accuracy, wall seconds and images per second.

    .venv/bin/python benchmarks/train_speed.py                 # both parts (~6 min)
    .venv/bin/python benchmarks/train_speed.py --no-recipe     # speed table only

The machine is shared: compare ratios from the same run and state the load average.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import time

IMAGES_PER_MEASUREMENT = 5120
BASELINE = "baseline: contiguous, batch 64, default threads"
EVAL_BATCHES = (50, 100, 250, 1000, 10000)


def train_setups() -> list[dict]:
    """(name, memory format, batch, threads (None: torch's default), wait policy (None: OpenMP's))."""
    from_cnnscope = _chosen()
    rows = [
        (BASELINE, "contiguous", 64, None, None),
        ("channels_last, batch 64", "channels_last", 64, None, None),
        ("channels_last, batch 128", "channels_last", 128, None, None),
        ("contiguous, batch 128", "contiguous", 128, None, None),
        ("contiguous, batch 64, passive wait", "contiguous", 64, None, "PASSIVE"),
        ("channels_last, batch 128, passive wait", "channels_last", 128, None, "PASSIVE"),
        ("1 thread: contiguous, batch 64", "contiguous", 64, 1, "PASSIVE"),
        ("1 thread: contiguous, batch 128", "contiguous", 128, 1, "PASSIVE"),
        ("1 thread: channels_last, batch 128", "channels_last", 128, 1, "PASSIVE"),
        ("1 thread: channels_last, batch 256", "channels_last", 256, 1, "PASSIVE"),
    ]
    setups = [{"kind": "train", "name": n, "format": f, "batch": b, "threads": t, "policy": p} for n, f, b, t, p in rows]
    setups.append({"kind": "train", "name": "chosen (cnnscope train)", **from_cnnscope})
    return setups


def _chosen() -> dict:
    from cnnscope.runtime import default_threads
    from cnnscope.training.settings import TrainSettings

    settings = TrainSettings()
    return {"format": "channels_last" if settings.channels_last else "contiguous", "batch": settings.batch_size,
            "threads": default_threads(), "policy": "PASSIVE"}


def worker(setup: dict) -> float:
    """Images per second of one set-up, measured in this (fresh) process.

    torch is imported before cnnscope on purpose: cnnscope sets OMP_WAIT_POLICY=PASSIVE
    when it is imported first, and the baseline must see OpenMP's default.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from cnnscope.data.mnist import load_mnist, to_tensor
    from cnnscope.training.settings import TrainSettings
    from cnnscope.training.state import new_model

    if setup["threads"]:
        torch.set_num_threads(setup["threads"])
    mnist = load_mnist()
    model = new_model(TrainSettings(), 0.13, 0.31)
    if setup["format"] == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    if setup["kind"] == "eval":
        model.eval()
        test = to_tensor(mnist.test_x)
        with torch.no_grad():
            model(test[:100])
            started = time.perf_counter()
            for start in range(0, len(test), setup["batch"]):
                model(test[start : start + setup["batch"]])
        return len(test) / (time.perf_counter() - started)
    x_all = to_tensor(mnist.train_x[:20000])
    y_all = torch.from_numpy(mnist.train_y[:20000].astype(np.int64))
    step_model = torch.compile(model) if setup.get("compile") else model
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
    return steps * batch / (time.perf_counter() - started)


def run_one(setup: dict) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if setup["policy"]:
        env["OMP_WAIT_POLICY"] = setup["policy"]
    command = [sys.executable, __file__, "--worker", json.dumps(setup)]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return float(output.strip().splitlines()[-1])


def measure(rounds: int, compile_model: bool) -> dict[str, float]:
    setups = train_setups()
    if compile_model:
        setups.append({"kind": "train", "name": "chosen + torch.compile", **_chosen(), "compile": True})
    setups += [{"kind": "eval", "name": f"eval batch {b}", "format": "channels_last", "batch": b, "threads": None,
                "policy": "PASSIVE"} for b in EVAL_BATCHES]
    samples: dict[str, list[float]] = {s["name"]: [] for s in setups}
    order = random.Random(0)
    for number in range(rounds):
        shuffled = setups[:]
        order.shuffle(shuffled)
        for setup in shuffled:
            samples[setup["name"]].append(run_one(setup))
        print(f"  round {number + 1}/{rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    return {name: statistics.median(values) for name, values in samples.items()}


def train_recipe(recipe: str, threads: int | None) -> dict:
    from dataclasses import replace

    from cnnscope.data.mnist import load_mnist
    from cnnscope.training.loop import train
    from cnnscope.training.settings import recipe_settings

    settings = replace(recipe_settings(recipe), threads=threads)
    started = time.perf_counter()
    mnist = load_mnist(split=settings.split, seed=settings.split_seed)
    state = train(settings, mnist, progress=False)
    wall = time.perf_counter() - started
    images = sum(r.images for r in state.history)
    return {"recipe": recipe, "epochs": state.epoch, "test_accuracy": state.history[-1].test_accuracy,
            "test_loss": state.history[-1].test_loss, "wall_seconds": wall,
            "images_per_second": images / sum(r.seconds for r in state.history)}


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
        print(worker(json.loads(args.worker)))
        return
    importlib.import_module("cnnscope")  # sets OMP_WAIT_POLICY=PASSIVE before torch loads, as the CLI does
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch default threads {torch.get_num_threads()}, "
          f"load average at start {os.getloadavg()[0]:.1f} (shared machine: compare ratios)", flush=True)
    medians = measure(args.rounds, args.compile)
    base = medians[BASELINE]
    print(f"\ntraining steps (Adam, real MNIST), median of {args.rounds} shuffled rounds, one process each:")
    for name, rate in medians.items():
        if not name.startswith("eval"):
            print(f"  {name:<48} {rate:8.0f} img/s   x{rate / base:.2f}")
    eval_base = medians["eval batch 10000"]
    print("inference (evaluating the 10000 test images, torch's default threads):")
    for batch in EVAL_BATCHES:
        rate = medians[f"eval batch {batch}"]
        print(f"  {'batch ' + str(batch):<48} {rate:8.0f} img/s   x{rate / eval_base:.2f} vs one batch of 10000")
    print(f"\nchosen settings {_chosen()} vs plain defaults: x{medians['chosen (cnnscope train)'] / base:.2f}")
    from floor import Floor

    from cnnscope.nn.model import CNN

    chosen = medians["chosen (cnnscope train)"]
    floor = Floor.measure(CNN(), None, batch=_chosen()["batch"], threads=_chosen()["threads"], backward="all")
    print(floor.header() + " (forward + input and weight gradients)")
    print(f"chosen: {floor.describe(1, 1 / chosen, 1 / base)}")
    if not args.no_recipe:
        print(f"\ntraining recipe {args.recipe!r} in full (load average {os.getloadavg()[0]:.1f}) ...", flush=True)
        result = train_recipe(args.recipe, args.threads)
        print(f"recipe {result['recipe']}: {result['epochs']} epochs, test accuracy {100 * result['test_accuracy']:.2f}% "
              f"(test loss {result['test_loss']:.6f}), wall {result['wall_seconds']:.0f} s, "
              f"{result['images_per_second']:.0f} training images/s (load average at end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
