"""OIP methods side by side (issue 16): pixel (the articles' algorithm), pixel + transformation
robustness, Fourier and MACO parametrisations, each with and without valid pixels (and, with
`--precursor K`, each with precursor starts), on the default model's Conv2D_3 (all 128 maps)
and the ten logits, in one process with the same steps.

Per method: maps that react, the share of live maps above their dataset maximum, the median
OIP / dataset max, the median natural-path similarity, the majority success rate, the median
share of pixels outside the valid range, and the wall time, also as "x plain PyTorch" (the plain
eager batched loop of the articles' rule on the same maps, timed first) and "x the floor" (the
method's image-steps of ascent at torch.mm's speed, `floor.py`; the transformations and
parametrisations cost more than those image-steps). Writes a Markdown table to stdout,
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

import torch
from floor import Floor
from oip_speed import plain_batched_loop

from cnnscope.data.mnist import load_mnist_for_model, to_tensor
from cnnscope.figures.oip import methods_picture
from cnnscope.files import save_image, write_json
from cnnscope.nn.checkpoint import load_model
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.examples import target_values
from cnnscope.optvis.methods import compare_methods, methods
from cnnscope.optvis.oip import logit_objectives, map_objectives, start_seed
from cnnscope.optvis.starts import multiscale_noise

PICTURE_MAPS = tuple(range(0, 128, 8))  # the same 16 maps in every row


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
    chosen = methods(args.precursor, args.only.split(",") if args.only else None,
                     (False,) if args.no_valid else (False, True))
    started = time.perf_counter()  # the plain eager batched loop of the articles' rule on the same maps
    plain_batched_loop(model, "Conv2D_3", multiscale_noise(len(maps), seeds=[start_seed(0, t, 0) for t in maps]),
                       args.steps)
    plain_seconds = time.perf_counter() - started
    floor = Floor.measure(model, "Conv2D_3", batch=len(maps), threads=args.threads)
    print(f"plain eager batched loop (articles' rule, {len(maps)} maps x {args.steps} steps): {plain_seconds:.1f} s; "
          f"{floor.header()}", flush=True)
    results = []
    for method in chosen:  # one method at a time, maps then logits, so the times are comparable
        [on_maps] = compare_methods(model, maps, images, map_values, base, [method])
        [on_logits] = compare_methods(model, logits, images, logit_values, base, [method])
        results.append({"method": method.label, "settings": method.fields, "precursor": method.precursor,
                        "maps": {**on_maps.summary, "seconds": round(on_maps.seconds, 1)},
                        "logits": {**on_logits.summary, "seconds": round(on_logits.seconds, 1)},
                        "run": on_maps.run})
        image_steps = float(on_maps.run.steps_used.sum() + len(maps))
        results[-1]["maps"].update(x_plain=round(plain_seconds / on_maps.seconds, 2),
                                   x_floor=round(on_maps.seconds / floor.seconds(image_steps), 1))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "run"}), flush=True)
    picture = methods_picture([(r["method"], r.pop("run")) for r in results], PICTURE_MAPS)
    print()
    print(table(results))
    write_json(args.json, {"steps": args.steps, "model": str(args.model or "default"), "methods": results})
    save_image(args.picture, picture)


def table(results: list[dict]) -> str:
    """The README table (maps of Conv2D_3, then the logits)."""
    head = ("| method | maps that react | live maps above dataset max | median OIP / max | median natural path "
            "| majority success | median pixels outside | time (maps) | x plain loop | x floor "
            "| logits above max | logits majority |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        m, g = r["maps"], r["logits"]
        lines.append(f"| {r['method']} | {m['reacted']} / {m['targets']} | {_pct(m['share_live_above_dataset_max'])} "
                     f"| {m['median_ratio']} | {m['median_natural_path']} | {_pct(m['majority_success_rate'])} "
                     f"| {_pct(m.get('median_outside'))} | {m['seconds']:.0f} s | {m['x_plain']:.2f}x | {m['x_floor']:.1f}x "
                     f"| {_pct(g['share_live_above_dataset_max'])} | {_pct(g['majority_success_rate'])} |")
    return "\n".join(lines)


def _pct(share) -> str:
    return "n/a" if share is None else f"{100 * share:.0f}%"


if __name__ == "__main__":
    main()
