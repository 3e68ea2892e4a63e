"""The speed ratios on a GPU: run this on a machine with CUDA (it is not part of the test suite).

Prints, on the chosen device, in one process:
- the OIP zoo (all maps of a layer, the articles' rule, `--steps` steps): the engine
  (`find_oips`) against the plain eager batched loop of benchmarks/oip_speed.py doing the
  same work, and both against the device's matrix-multiply floor;
- training steps of the default recipe (cnnscope's `train` for a fraction of an epoch) against
  a plain eager training loop (benchmarks/floor.py) with the same batch size.

    .venv/bin/python benchmarks/gpu.py                       # CUDA (refused without a GPU)
    .venv/bin/python benchmarks/gpu.py --device cpu --steps 50 --train-images 2560   # a dry run here

Timings synchronise the device before reading the clock; medians of `--repeats`.
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import statistics
import sys
import time
from dataclasses import replace

import torch

from floor import layer_gemms, work_flop
from oip_speed import plain_batched_loop


def synchronized(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        synchronized(device)
        started = time.perf_counter()
        result = fn()
        synchronized(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def device_gflops(shapes, device: torch.device, seconds: float = 0.3) -> float:
    """GFLOP/s of torch.mm on `shapes` (M, K, N) on the device, FLOP-weighted."""
    pairs = [(torch.randn(m, k, device=device), torch.randn(k, n, device=device)) for m, k, n in shapes]
    flop = sum(2.0 * m * k * n for m, k, n in shapes)
    for a, b in pairs:
        torch.mm(a, b)
    synchronized(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or count == 0:
        for a, b in pairs:
            torch.mm(a, b)
        count += 1
    synchronized(device)
    return count * flop / (time.perf_counter() - started) / 1e9


def plain_training_seconds(model, mnist, batch: int, lr: float, steps: int, device: torch.device) -> float:
    """Wall seconds of `steps` plain eager training steps (Adam, F.cross_entropy, batches drawn
    at random from the training images already on the device), after 3 warm-up steps."""
    import numpy as np
    import torch.nn.functional as F

    from cnnscope.data.mnist import to_tensor

    x = to_tensor(mnist.train_x[:20000]).to(device)
    y = torch.from_numpy(mnist.train_y[:20000].astype(np.int64)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    model.train()

    def step():
        index = torch.randint(0, len(y), (batch,), generator=generator).to(device)
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    synchronized(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronized(device)
    return time.perf_counter() - started


def main() -> int:
    from cnnscope.data.mnist import load_mnist
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.oip import find_oips, map_objectives, start_seed
    from cnnscope.optvis.starts import multiscale_noise
    from cnnscope.runtime import pick_device
    from cnnscope.training.loop import train
    from cnnscope.training.settings import recipe_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the default model)")
    parser.add_argument("--layer", default="Conv2D_3")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=12800)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here; run it on a machine with a GPU "
              "(or --device cpu for a dry run)", file=sys.stderr)
        return 2
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}")

    model, _ = load_model(args.model, device=device)
    targets = map_objectives(model, args.layer)
    n_maps, settings = len(targets), AscentSettings(steps=args.steps)
    starts = multiscale_noise(n_maps, seeds=[start_seed(0, t, 0) for t in targets]).to(device)
    engine_s, run = median_seconds(lambda: find_oips(model, targets, settings, device=device), device, args.repeats)
    plain_s, _ = median_seconds(lambda: plain_batched_loop(model, args.layer, starts, args.steps), device, args.repeats)
    shapes = [(m, k, n) for _, m, k, n in layer_gemms(model, args.layer, n_maps)]
    gflops = device_gflops(shapes, device)
    floor_s = work_flop(model, args.layer, "input") * n_maps * (args.steps + 1) / (gflops * 1e9)
    print(f"OIP zoo, {n_maps} maps of {args.layer} x {args.steps} steps: engine {engine_s:.2f} s, plain eager "
          f"batched loop {plain_s:.2f} s -> {plain_s / engine_s:.2f}x plain PyTorch's speed; "
          f"floor {floor_s:.3f} s at {gflops:.0f} GFLOP/s (engine {engine_s / floor_s:.1f}x the floor); "
          f"{int(run.reacted.sum())} maps reacted")

    mnist = load_mnist()
    recipe = recipe_settings("default")
    settings = replace(recipe, epochs=1, train_images=args.train_images, test_images=1000)
    batch, steps = recipe.batch_size, args.train_images // recipe.batch_size
    train_s, _ = median_seconds(lambda: train(settings, mnist, device=device, progress=False, log=lambda line: None),
                                device, 1)
    plain_s = plain_training_seconds(cnnscope.CNN().to(device), mnist, batch, recipe.lr, steps, device)
    train_flop = work_flop(model, None, "all") * args.train_images
    print(f"training, {args.train_images} images of the default recipe (batch {batch}): cnnscope {train_s:.2f} s "
          f"(including its test pass of 1000 images), plain eager loop {plain_s:.2f} s -> "
          f"{plain_s / train_s:.2f}x plain PyTorch's speed; {train_flop / train_s / 1e9:.0f} GFLOP/s achieved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
