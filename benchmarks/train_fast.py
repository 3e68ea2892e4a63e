"""Time to 99.4% test accuracy of training recipes, as a multiple of one plain eager epoch (same run).

First one epoch of the default recipe (Adam, batch 128, the one-cycle schedule) in a plain
eager PyTorch loop (contiguous weights, `torch.optim.Adam`, no cnnscope code in the step) is
timed: the unit. Then each candidate recipe trains in full through `cnnscope.training.train`
on the official split, and its time to the first epoch at >= 99.4% test accuracy (training
plus the per-epoch evaluation, as `cnnscope train` spends it) is stated in plain epochs
(target: <= 2.5). The matrix-multiply floor of one epoch (benchmarks/floor.py: forward,
input and weight gradients of the conv and dense layers) is printed with each figure.

    .venv/bin/python benchmarks/train_fast.py                       # recipes default and fast
    .venv/bin/python benchmarks/train_fast.py --candidate 256:0.005:2 --candidate 512:0.008:3

A candidate is BATCH:LR:EPOCHS[:FIELD=VALUE...] with the default recipe's other settings
(e.g. 256:0.005:3:ema=0.99). Each run costs one
to four minutes on the 2-core machine; compare ratios from the same run, quote the load.
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import math
import os
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from floor import Floor

TARGET = 0.994


def plain_epoch(mnist, batch: int = 128, lr: float = 3e-3, epochs: int = 4) -> tuple[float, float]:
    """Seconds of the first epoch of a plain eager loop with the default recipe, and its test accuracy."""
    from cnnscope.data.mnist import to_tensor
    from cnnscope.training.settings import TrainSettings
    from cnnscope.training.state import new_model

    model = new_model(TrainSettings(), float(mnist.train_x.mean() / 255), float(mnist.train_x.std() / 255))
    x, y = to_tensor(mnist.train_x), torch.from_numpy(mnist.train_y.astype(np.int64))
    steps = math.ceil(len(y) / batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps * epochs)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    model.train()
    for index in range(steps):
        chosen = order[index * batch:(index + 1) * batch]
        loss = F.cross_entropy(model(x[chosen]), y[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        test = to_tensor(mnist.test_x)
        correct = sum(int((model(part).argmax(1) == label).sum()) for part, label in
                      zip(test.split(1000), torch.from_numpy(mnist.test_y.astype(np.int64)).split(1000), strict=True))
    return seconds, correct / len(mnist.test_y)


def run_recipe(name: str, settings, mnist) -> dict:
    from cnnscope.training.loop import train

    started = time.perf_counter()
    state = train(settings, mnist, progress=False, log=lambda line: print(f"    {name}: {line}", flush=True))
    wall = time.perf_counter() - started
    elapsed, reached = 0.0, None
    for record in state.history:
        elapsed += record.seconds + record.eval_seconds
        if reached is None and record.test_accuracy >= TARGET:
            reached = (record.epoch, elapsed)
    return {"name": name, "settings": settings, "history": state.history, "wall": wall, "reached": reached,
            "train_seconds": sum(r.seconds for r in state.history)}


def main() -> int:
    from cnnscope.data.mnist import load_mnist
    from cnnscope.nn.model import CNN
    from cnnscope.training.settings import recipe_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", action="append", default=None,
                        help="recipes to run (default: default and fast, none if candidates are given)")
    parser.add_argument("--candidate", action="append", default=[], metavar="BATCH:LR:EPOCHS[:FIELD=VALUE]")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    mnist = load_mnist()
    floor = Floor.measure(CNN(), None, batch=128, threads=args.threads, backward="all")
    print(f"torch {torch.__version__}, threads {args.threads}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; official split, {len(mnist.train_y)} training images")
    print(floor.header() + " (forward + input and weight gradients)")
    unit, plain_accuracy = plain_epoch(mnist)
    images = len(mnist.train_y)
    print(f"plain eager epoch (default recipe, batch 128): {unit:.1f} s (test accuracy after it {100 * plain_accuracy:.2f}%); "
          f"{floor.describe(images, unit)}", flush=True)
    names = args.recipe or ([] if args.candidate else ["default", "fast"])
    runs = [(name, recipe_settings(name)) for name in names]
    for text in args.candidate:
        batch, lr, epochs, *more = text.split(":")
        extra = {key: type(getattr(recipe_settings("default"), key))(value)
                 for key, value in (item.split("=") for item in more)}
        runs.append((f"candidate {text}", replace(recipe_settings("default"), recipe="custom", batch_size=int(batch),
                                                  lr=float(lr), epochs=int(epochs), **extra)))
    for name, settings in runs:
        result = run_recipe(name, replace(settings, threads=args.threads), mnist)
        last = result["history"][-1]
        per_epoch = result["train_seconds"] / len(result["history"])
        reached = result["reached"]
        verdict = (f"99.4% after epoch {reached[0]} at {reached[1]:.1f} s = {reached[1] / unit:.2f} plain epochs "
                   f"(target <= 2.5)" if reached else "never reached 99.4%")
        print(f"{name} ({settings.describe()}): final {100 * last.test_accuracy:.2f}%, {verdict}; "
              f"one epoch {per_epoch:.1f} s = {unit / per_epoch:.2f}x plain PyTorch, "
              f"{floor.describe(images, per_epoch)}; load average {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
