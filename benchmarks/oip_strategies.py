"""The articles' two OIP strategies, and the agreement of many starts, on one model (same run).

Strategy 0 ("superposition", the default): all noise scales in the start, 600 steps.
Strategy 1 ("coarse-to-fine"): the longest scale first, the shorter ones added after stages of
20, 40, 80 and 400 steps. For each: maps that react, the median final activation of the
reacting maps, the share of live maps (maps that fire on a test image) whose OIP beats their
dataset maximum, and the wall time. Then `--starts` starts per map with strategy 0: the
median shift-tolerant similarity of the starts of each map, against the baseline of
different maps, and which maps are stable.

Usage: .venv/bin/python benchmarks/oip_strategies.py [--model DIR] [--layer Conv2D_3] [--starts 8] [--threads 1]
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import json
import time

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--layer", default="Conv2D_3")
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from cnnscope.data.mnist import load_mnist_for_model, to_tensor
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.gallery import gallery_summary
    from cnnscope.optvis.oip import (
        add_dataset_max,
        find_oips,
        map_objectives,
        quality,
    )
    from cnnscope.optvis.strategies import CoarseToFine

    torch.set_num_threads(args.threads)
    model, config = load_model(args.model)
    test = to_tensor(load_mnist_for_model(config).test_x)
    targets = map_objectives(model, args.layer)
    rows, runs = [], {}
    for name, strategy in (("superposition (strategy 0), 600 steps", None),
                           ("coarse-to-fine (strategy 1), 20+40+80+400 steps", CoarseToFine())):
        started = time.perf_counter()
        run = find_oips(model, targets, AscentSettings(), strategy=strategy, seed=0)
        seconds = time.perf_counter() - started
        add_dataset_max(run, model, test)
        figures = quality(run)
        reacting = run.final[run.reacted]
        rows.append({"strategy": name, "reacted": figures["reacted"], "targets": figures["targets"],
                     "live": figures["live"], "median_activation": round(float(reacting.median()), 3),
                     "share_live_beating_dataset_max": figures["share_live_beating_dataset_max"],
                     "seconds": round(seconds, 1)})
        runs[name] = run
        rows[-1]["image_steps"] = float(run.steps_used.sum() + len(targets))
    from floor import Floor
    from oip_speed import plain_batched_loop

    from cnnscope.optvis.oip import start_seed
    from cnnscope.optvis.starts import multiscale_noise

    starts = multiscale_noise(len(targets), seeds=[start_seed(0, t, 0) for t in targets])
    started = time.perf_counter()
    plain_batched_loop(model, args.layer, starts, 600)
    plain = time.perf_counter() - started
    floor = Floor.measure(model, args.layer, batch=len(targets), threads=args.threads, backward="input")
    print(floor.header())
    print(f"plain eager batched loop, strategy 0's work ({len(targets)} maps x 600 steps): {plain:.1f} s")
    for row in rows:
        against = plain if row["strategy"].startswith("superposition") else None
        print(f"  {row['strategy']}: {floor.describe(row['image_steps'], row['seconds'], against)}")
    print("| strategy | maps that react | median activation | live maps above dataset max | time |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['strategy']} | {row['reacted']} of {row['targets']} | {row['median_activation']} | "
              f"{100 * row['share_live_beating_dataset_max']:.1f}% of {row['live']} | {row['seconds']} s |")
    started = time.perf_counter()
    gallery = find_oips(model, targets, AscentSettings(), restarts=args.starts, seed=0)
    seconds = time.perf_counter() - started
    summary = gallery_summary(gallery)
    stable = [i for i, v in enumerate(summary["verdict"]) if v == "stable"]
    dependent = [i for i, v in enumerate(summary["verdict"]) if v == "start-dependent"]
    print(json.dumps({"starts": args.starts, "seconds": round(seconds, 1), "threshold": summary["threshold"],
                      "median_similarity": summary["median_similarity"], "stable": len(stable),
                      "start_dependent": len(dependent), "stable_maps": stable, "start_dependent_maps": dependent,
                      "too_few_reacting": summary["verdict"].count("too few reacting starts")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
