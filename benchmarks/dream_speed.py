"""Speed of `cnnscope dream` on a 512 x 512 photo, against the bare engine in the same run.

Targets (issue 5): downscale with defaults <= 3 s; octaves 3 x 20 steps <= 10 s.
Baselines: the bare `ascent.ascend` loop on the same image sizes and step counts, so the
ratios show what the dream adds around the one engine (resizing, detail, bookkeeping).
Also compares 1 torch thread (the dream's default) with torch's default thread count.

Usage: .venv/bin/python benchmarks/dream_speed.py [--model DIR] [--repeats N]
Timings are medians; on a shared machine quote them as "measured under load".
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from PIL import Image


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    # cnnscope first: its __init__ sets OMP_WAIT_POLICY before torch loads
    from cnnscope.app.parsing import parse_layer_mix
    from cnnscope.data.photos import photo_from_image, sample_image
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.optvis.ascent import AscentSettings, ascend
    from cnnscope.optvis.dream import DreamSettings, dream, octave_sizes, resize
    from cnnscope.optvis.objectives import channel
    from cnnscope.runtime import using_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the default model)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    model, _ = load_model(args.model)
    photo = photo_from_image(sample_image("flower").resize((512, 512), Image.Resampling.BICUBIC), "flower 512x512")
    one_map = channel("Conv2D_3", 56)
    mix = parse_layer_mix("Conv2D_2:1.0,Conv2D_3:2.0")
    print(f"torch {torch.__version__}, default threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows = []

    def bench(name, fn, baseline_fn, repeats, target=None):
        with using_threads(1):
            base = median_time(baseline_fn, repeats)
        value = median_time(fn, repeats)
        rows.append((name, value, base, target))
        flag = ""
        if target is not None:
            verdict = f"met, {target / value:.0f}x margin" if value <= target else "MISSED"
            flag = f"  target <= {target:g} s: {verdict}"
        print(f"{name:44s} {value:7.3f} s   bare engine {base:6.3f} s   ratio {value / base:5.2f}{flag}", flush=True)

    # downscale: 4 rounds x 40 steps on 28 x 28
    down = DreamSettings()
    x28 = torch.randn(1, 1, 28, 28)

    def engine_downscale():
        for _ in range(4):
            ascend(model, x28, one_map, AscentSettings(steps=40, snapshot_steps=()))

    bench("downscale defaults (4 x 40 steps)", lambda: dream(model, photo, one_map, down), engine_downscale,
          args.repeats, target=3.0)
    from floor import Floor
    from oip_speed import articles_loop

    def plain_downscale():
        for _ in range(4):
            articles_loop(model, "Conv2D_3", 56, x28, steps=40)

    with using_threads(1):
        plain = median_time(plain_downscale, args.repeats)
        floor = Floor.measure(model, "Conv2D_3", batch=1, threads=1, backward="input")
    name, value, _, _ = rows[-1]
    print(f"  {floor.header()}")
    print(f"  plain eager loop, 4 x 40 steps on 28x28: {plain:.3f} s; the dream: {floor.describe(160, value, plain)}")

    # octaves: 3 x 20 steps, default px 4 -> 91, 128 network pixels
    octaves = DreamSettings(mode="octaves", steps=20)
    sizes = octave_sizes(512, 512, 3, 1.4, 4.0)
    starts = [resize(photo.luminance, size) for size in sizes]

    def engine_octaves():
        for start in starts:
            ascend(model, start, mix, AscentSettings(steps=20, standardize=False, jitter=4, snapshot_steps=()))

    bench(f"octaves 3 x 20 steps, px 4 {sizes}", lambda: dream(model, photo, mix, octaves), engine_octaves,
          args.repeats, target=10.0)

    octaves_px1 = DreamSettings(mode="octaves", steps=20, px=1.0)
    sizes_px1 = octave_sizes(512, 512, 3, 1.4, 1.0)
    starts_px1 = [resize(photo.luminance, size) for size in sizes_px1]

    def engine_octaves_px1():
        for start in starts_px1:
            ascend(model, start, mix, AscentSettings(steps=20, standardize=False, jitter=4, snapshot_steps=()))

    bench("octaves 3 x 20 steps, px 1 (finest 512x512)", lambda: dream(model, photo, mix, octaves_px1),
          engine_octaves_px1, max(1, args.repeats // 2))

    native = DreamSettings(mode="native", tile=112)
    full = photo.luminance

    def engine_native():
        for _ in range(4):
            ascend(model, full, one_map, AscentSettings(steps=10, standardize=False, jitter=4, snapshot_steps=()))

    bench("native 4 x 10 steps, 112px tiles", lambda: dream(model, photo, one_map, native), engine_native,
          max(1, args.repeats // 2))

    # threads: the dream's default (1) vs torch's default
    print("\nthreads (median of", args.repeats, "runs each):")
    for name, objective, settings in (("downscale defaults", one_map, down), ("octaves 3 x 20, px 4", mix, octaves)):
        single = median_time(lambda o=objective, s=settings: dream(model, photo, o, s, threads=1), args.repeats)
        default = median_time(lambda o=objective, s=settings: dream(model, photo, o, s, threads=None), args.repeats)
        print(f"  {name:26s} 1 thread {single:6.3f} s   torch default ({torch.get_num_threads()}) {default:6.3f} s"
              f"   ratio {default / single:5.2f}")

    # the whole command, Python start-up included
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "flower512.png")
        sample_image("flower").resize((512, 512), Image.Resampling.BICUBIC).save(path)
        model_option = ["--model", args.model] if args.model else []
        command = [sys.executable, "-m", "cnnscope", "dream", path, *model_option, "--out", folder, "--quiet"]
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            walls.append(time.perf_counter() - start)
        startup = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import cnnscope.optvis.dream, cnnscope.data.photos, cnnscope.nn.checkpoint"],
                           check=True, capture_output=True)
            startup.append(time.perf_counter() - start)
    print(f"\n`cnnscope dream` 512x512, defaults, whole command: {statistics.median(walls):.2f} s "
          f"(of which Python start-up and imports {statistics.median(startup):.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
