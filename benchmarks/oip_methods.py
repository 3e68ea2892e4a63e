"""OIP methods side by side (issue 16): pixel (the articles' algorithm), pixel + transformation
robustness, Fourier and MACO parametrisations, each with and without valid pixels (and, with
`--precursor K`, each with precursor starts), on the default model's Conv2D_3 (all 128 maps)
and the ten logits, in one process with the same steps.

Per method: maps that react, the share of live maps above their dataset maximum, the median
OIP / dataset max, the median natural-path similarity, the majority success rate, the median
share of pixels outside the valid range, and the wall time. Writes a Markdown table to stdout,
the figures as JSON (--json) and a picture grid of the same 16 maps under every method (--picture).

Usage: .venv/bin/python benchmarks/oip_methods.py [--model DIR] [--steps 600] [--precursor 0]
       [--only "pixel (articles),fourier"] [--no-valid]
       [--json out/oip_methods.json] [--picture docs/images/oip_methods.png]
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from cnnscope.data.mnist import load_mnist_for_model, to_tensor
from cnnscope.figures.render import colorize, enhance_contrast, stack, text_block, upscale
from cnnscope.files import save_image, write_json
from cnnscope.nn.checkpoint import load_model
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.examples import target_values
from cnnscope.optvis.oip import find_oips, logit_objectives, map_objectives
from cnnscope.optvis.quality import quality_report
from cnnscope.optvis.transforms import ROBUST_ROTATE, ROBUST_SHIFT, ROBUST_ZOOM

PICTURE_MAPS = tuple(range(0, 128, 8))  # the same 16 maps in every row

METHODS = {
    "pixel (articles)": {},
    "pixel + robustness": {"shift": ROBUST_SHIFT, "zoom": ROBUST_ZOOM, "rotate": ROBUST_ROTATE},
    "fourier": {"param": "fourier"},
    "maco": {"param": "maco"},
}


def methods(precursor: int, only: str | None = None, valid_options=(False, True)) -> list[tuple[str, dict, int]]:
    rows = []
    for name, fields in METHODS.items():
        if only and name not in only.split(","):
            continue
        for valid in valid_options:
            label = name + (" + valid pixels" if valid else "")
            rows.append((label, {**fields, "valid_pixels": valid}, 0))
            if precursor:
                rows.append((label + f" + precursor {precursor}", {**fields, "valid_pixels": valid}, precursor))
    return rows


def measure(model, targets, values, images, settings, precursor: int) -> tuple[dict, object, float]:
    started = time.perf_counter()
    run = find_oips(model, targets, settings, precursor=precursor)
    seconds = time.perf_counter() - started
    report = quality_report(run, model, images, values)
    return report["summary"], run, seconds


def picture_row(label: str, run, maps) -> np.ndarray:
    tiles = []
    for m in maps:
        values = run.images[m, 0].numpy()
        tiles.append(upscale(colorize(enhance_contrast(values), "viridis", 0.0, 1.0), 2))
    strip = stack(tiles, axis="h", gap=2)[0]
    return stack([text_block(label, size=12, width=strip.shape[1]), strip], axis="v", gap=1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--precursor", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default=None, help="comma-separated method names of METHODS (default: all)")
    parser.add_argument("--no-valid", action="store_true", help="leave out the valid-pixel variants")
    parser.add_argument("--json", default="out/oip_methods.json")
    parser.add_argument("--picture", default="docs/images/oip_methods.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_model(args.model)
    images = to_tensor(load_mnist_for_model(config).test_x)
    maps, logits = map_objectives(model, "Conv2D_3"), logit_objectives(model)
    map_values, logit_values = target_values(model, maps, images), target_values(model, logits, images)
    base = AscentSettings(steps=args.steps)
    results, rows = [], []
    for label, fields, precursor in methods(args.precursor, args.only, (False,) if args.no_valid else (False, True)):
        settings = replace(base, **fields).check()
        map_summary, run, map_seconds = measure(model, maps, map_values, images, settings, precursor)
        logit_summary, _, logit_seconds = measure(model, logits, logit_values, images, settings, precursor)
        results.append({"method": label, "settings": fields, "precursor": precursor,
                        "maps": {**map_summary, "seconds": round(map_seconds, 1)},
                        "logits": {**logit_summary, "seconds": round(logit_seconds, 1)}})
        rows.append(picture_row(label, run, PICTURE_MAPS))
        print(json.dumps(results[-1]), flush=True)
    print()
    print(table(results))
    write_json(args.json, {"steps": args.steps, "model": str(args.model or "default"), "methods": results})
    save_image(args.picture, stack(rows, axis="v", gap=4)[0])


def table(results: list[dict]) -> str:
    """The README table (maps of Conv2D_3, then the logits)."""
    head = ("| method | maps that react | live maps above dataset max | median OIP / max | median natural path "
            "| majority success | median pixels outside | time (maps) | logits above max | logits majority |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        m, g = r["maps"], r["logits"]
        lines.append(f"| {r['method']} | {m['reacted']} / {m['targets']} | {_pct(m['share_live_above_dataset_max'])} "
                     f"| {m['median_ratio']} | {m['median_natural_path']} | {_pct(m['majority_success_rate'])} "
                     f"| {_pct(m.get('median_outside'))} | {m['seconds']:.0f} s "
                     f"| {_pct(g['share_live_above_dataset_max'])} | {_pct(g['majority_success_rate'])} |")
    return "\n".join(lines)


def _pct(share) -> str:
    return "n/a" if share is None else f"{100 * share:.0f}%"


if __name__ == "__main__":
    main()
