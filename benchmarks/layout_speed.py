"""Training time per epoch of article III's layouts, against the seed CNN in the same process.

Each layout is trained with the `seed` recipe's step (RMSprop, momentum 0.8, power schedule, L2
on the dense kernels, batch 64) on real MNIST images through `cnnscope.training.loop.train`;
the layouts take turns over several rounds and the median seconds per step are reported,
scaled to one epoch of 60000 images (938 steps), with the ratio to the seed CNN's. The machine
is shared: compare the ratios, and state the load average.

    .venv/bin/python benchmarks/layout_speed.py            # 3 rounds of 1920 images each (~2 min)
    .venv/bin/python benchmarks/layout_speed.py --images 6400 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import replace

from floor import Floor, plain_train_seconds_per_step

import cnnscope  # noqa: F401  (first: the OpenMP wait policy before torch loads)
from cnnscope.data.mnist import load_mnist
from cnnscope.training.loop import train
from cnnscope.training.settings import recipe_settings

LAYOUTS = {  # name -> (--conv, --dense) as article III's lists
    "seed CNN: 32-64-128 / 100-10": (((32, 3, "relu"), (64, 3, "relu"), (128, 3, "relu")), ((100, "relu"), (10, "softmax"))),
    "III cell 4: 32-64-64 / 70-10": (((32, 3, "relu"), (64, 3, "relu"), (64, 3, "relu")), ((70, "relu"), (10, "softmax"))),
    "III run: 64-64-128 / 120-10": (((64, 3, "relu"), (64, 3, "relu"), (128, 3, "relu")), ((120, "relu"), (10, "softmax"))),
    "III run: 32-64-128 / 120-10": (((32, 3, "relu"), (64, 3, "relu"), (128, 3, "relu")), ((120, "relu"), (10, "softmax"))),
}
STEPS_PER_EPOCH = 938  # 60000 images in batches of 64


def seconds_per_step(mnist, conv, dense, images: int) -> float:
    settings = replace(recipe_settings("seed"), epochs=1, train_images=images, test_images=100, conv=conv, dense=dense)
    state = train(settings, mnist, progress=False, log=lambda line: None)
    record = state.history[-1]
    return record.seconds / record.step


def plain_and_floor(mnist, conv, dense) -> tuple[float, Floor]:
    """Seconds per step of the same layout in a plain eager loop (RMSprop, batch 64), and its floor."""
    import torch

    from cnnscope.training.state import new_model

    model = new_model(replace(recipe_settings("seed"), conv=conv, dense=dense), 0.13, 0.31)
    floor = Floor.measure(model, None, batch=64, threads=torch.get_num_threads(), backward="all")
    return plain_train_seconds_per_step(model, mnist, 64, "rmsprop", 1e-3), floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1920, help="training images per measurement (default 1920)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    mnist = load_mnist()
    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    plain: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    floors = {}
    for round_index in range(args.rounds):
        order = list(LAYOUTS) if round_index % 2 == 0 else list(reversed(LAYOUTS))
        for name in order:
            times[name].append(seconds_per_step(mnist, *LAYOUTS[name], args.images))
            seconds, floors[name] = plain_and_floor(mnist, *LAYOUTS[name])
            plain[name].append(seconds)
    baseline = statistics.median(times[next(iter(LAYOUTS))])
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds of {args.images} images, batch 64")
    print(floors[next(iter(LAYOUTS))].header() + " (seed CNN; forward + input and weight gradients)")
    print(f"{'layout':32} {'s/epoch':>8} {'ratio':>6}   against plain PyTorch and the floor")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:32} {median * STEPS_PER_EPOCH:8.0f} {median / baseline:6.2f}   "
              f"{floors[name].describe(64, median, statistics.median(plain[name]))}")


if __name__ == "__main__":
    main()
