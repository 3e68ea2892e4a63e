"""Speed of the activation and pattern pictures against the issue's targets.

1. All layers of one image, computed and rendered to PNG files (model already loaded):
   target < 1 s.
2. `patterns` over 2 x 200 test images (Conv2D_3 and Dense_1: activations, measures,
   pictures, most confusable images, PNG + JSON files; model and data already loaded):
   target < 10 s.

Each is compared with a baseline measured in the same run: a plain forward pass of the
model over the same images (the compute floor), so the ratios stay meaningful on a busy
machine. Medians of several repeats; the first (cold) run is reported separately.

    .venv/bin/python benchmarks/inspect_speed.py [--model DIR]
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def timed(function, repeats: int) -> tuple[float, float]:
    """(first run, median of the following `repeats` runs) in seconds."""
    started = time.perf_counter()
    function()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the default model)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from floor import Floor

    from cnnscope.analysis.patterns import class_indices, class_patterns, most_confusable
    from cnnscope.data.images import dataset_images
    from cnnscope.data.mnist import load_mnist, to_tensor
    from cnnscope.figures.activations import layer_figures
    from cnnscope.figures.patterns import confusable_figure, pattern_figure, separating_figure
    from cnnscope.files import save_image, write_json
    from cnnscope.nn.checkpoint import load_model

    model, _ = load_model(args.model)
    mnist = load_mnist()
    floor = Floor.measure(model, None, batch=400, threads=torch.get_num_threads(), backward="none")
    print(floor.header() + " (forward only)")
    out = Path(tempfile.mkdtemp(prefix="inspect_speed_"))
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")

    # 1. all layers of one image -> PNG files
    image = dataset_images(mnist, [19])
    one = to_tensor(mnist.test_x[19:20])

    def all_layers_to_png():
        for layer, figure in layer_figures(model, image).items():
            save_image(out / f"{layer}.png", figure.image)
            write_json(out / f"{layer}.json", figure.stats)

    def forward_one():
        with torch.no_grad():
            model(one)

    cold, warm = timed(all_layers_to_png, args.repeats)
    _, base = timed(forward_one, args.repeats * 3)
    print("\n1. all 7 layers of one image, computed + rendered + written as PNG + JSON")
    print(f"   first (cold) run {cold:.3f} s; median {warm:.3f} s  (target < 1 s: {warm / 1.0:.2f} of the budget)")
    print(f"   baseline: one forward pass {base * 1000:.2f} ms; ratio {warm / base:.0f}x (the rest is drawing + PNG encoding)")
    print(f"   command: {floor.describe(1, warm, base)}; the forward pass alone: {floor.describe(1, base)}")

    # 2. patterns over 2 x 200 images
    x, y = mnist.images("test")
    idx_a, idx_b = class_indices(y, 4, 200), class_indices(y, 9, 200)
    a, b = to_tensor(x[idx_a]), to_tensor(x[idx_b])

    def patterns_run():
        results = class_patterns(model, a, b, ["Conv2D_3", "Dense_1"], (4, 9))
        for layer, result in results.items():
            save_image(out / f"patterns_{layer}.png", pattern_figure(result))
            save_image(out / f"separating_{layer}.png", separating_figure(result))
        rows = []
        for tensor, idx, digit, other in ((a, idx_a, 4, 9), (b, idx_b, 9, 4)):
            items = most_confusable(model, tensor, other, 8)
            rows.append((f"{digit}s like {other}s", dataset_images(mnist, [int(idx[i.position]) for i in items]), items, other))
        save_image(out / "confusable.png", confusable_figure(rows))
        write_json(out / "patterns.json", {layer: r.describe() for layer, r in results.items()})

    def forward_400():
        with torch.no_grad():
            model(a)
            model(b)

    cold, warm = timed(patterns_run, max(3, args.repeats // 2))
    _, base = timed(forward_400, args.repeats)
    print("\n2. patterns 4 vs 9 over 2 x 200 test images (Conv2D_3 + Dense_1, pictures, confusables, files)")
    print(f"   first (cold) run {cold:.3f} s; median {warm:.3f} s  (target < 10 s: {warm / 10.0:.2f} of the budget)")
    print(f"   baseline: forward pass of the 400 images {base * 1000:.1f} ms; ratio {warm / base:.0f}x")
    print(f"   command: {floor.describe(400, warm, base)}; the forward pass alone: {floor.describe(400, base)}")
    print(f"\nfiles in {out}")


if __name__ == "__main__":
    main()
