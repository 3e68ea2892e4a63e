"""`cnnscope explain`: attribution maps (saliency, SmoothGrad, Grad-CAM, occlusion) over the digit."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cnnscope.app.commands import add_common_options
from cnnscope.errors import UserError

NAME = "explain"
ORDER = 32
HELP = "why this prediction: saliency, SmoothGrad, Grad-CAM (any conv layer) or occlusion over the digit"
DESCRIPTION = (
    "Attribution maps for the predicted class (or --target) of dataset images or your own "
    "picture, each over the digit. Writes a PNG and a JSON sidecar with the maps' numbers."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnscope.analysis.attribution import METHODS
    from cnnscope.app.commands.activations import add_image_options
    from cnnscope.figures.render import CMAPS

    add_common_options(parser)
    add_image_options(parser)
    parser.add_argument("--method", default="all", metavar="NAMES",
                        help=f"comma-separated from {', '.join(METHODS)}, or all (default all)")
    parser.add_argument("--target", type=int, default=None, metavar="K",
                        help="explain class K instead of the predicted class")
    parser.add_argument("--layer", default=None, metavar="NAME",
                        help="Grad-CAM layer, any conv or pool layer (default: the last conv layer with maps of "
                             "at least 7x7, Conv2D_2 for the seed CNN; Conv2D_3's 3x3 maps are very coarse)")
    parser.add_argument("--samples", type=int, default=25, metavar="N", help="SmoothGrad: noisy copies (default 25)")
    parser.add_argument("--noise", type=float, default=0.15, metavar="S",
                        help="SmoothGrad: noise std as a share of the image's value range (default 0.15)")
    parser.add_argument("--window", type=int, default=4, metavar="W", help="occlusion: patch size in pixels (default 4)")
    parser.add_argument("--stride", type=int, default=2, metavar="S", help="occlusion: patch step (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="SmoothGrad noise seed (default 0)")
    parser.add_argument("--cmap", default="jet", choices=CMAPS, metavar="CMAP", help="heat colour map (default jet)")
    parser.add_argument("--out", default="out/explain", metavar="PATH", help="folder or .png file (default out/explain)")


def run(args) -> int:
    from cnnscope.analysis import attribution
    from cnnscope.analysis.evaluation import predict_images
    from cnnscope.app.commands.activations import (
        check_output_files,
        images_tag,
        load_inputs,
        load_model_for,
        output_paths,
    )
    from cnnscope.app.parsing import parse_methods
    from cnnscope.data.images import to_batch
    from cnnscope.figures.attribution import explanation_figure
    from cnnscope.files import save_image, write_json, written_together
    from cnnscope.runtime import device_of

    started = time.perf_counter()
    methods = parse_methods(args.method)
    check_arguments(args)
    model, config = load_model_for(args)
    args.layer = args.layer or attribution.default_gradcam_layer(model)
    check_model_arguments(args, model, methods)
    images = load_inputs(args, config)
    path = check_output_files(output_paths(Path(args.out).expanduser(), images_tag(images), ["explain"]))["explain"]
    batch = to_batch(images, device_of(model))
    targets = attribution.resolve_target(model, batch, args.target).cpu().numpy()
    options = method_options(args)
    maps = {m: attribution.attribute(m, model, batch, targets, **options.get(m, {})).numpy() for m in methods}
    probabilities = predict_images(model, images)
    titles = {"gradcam": f"Grad-CAM ({args.layer})"}
    picture = explanation_figure(images, maps, targets, probabilities, cmap=args.cmap, titles=titles)
    details = image_details(images, maps, targets, probabilities)
    with written_together():
        save_image(path, picture)
        write_json(path.with_suffix(".json"), sidecar(args, methods, titles, options, details, path))
    print(f"wrote {path} (+ .json)")
    for entry in details:
        shares = ", ".join(f"{m} {v['ink_share']:.0%} on ink" for m, v in entry["methods"].items())
        print(f"{entry['name']}: predicted {entry['predicted']}, explained class {entry['target']}: {shares}")
    print(f"done in {time.perf_counter() - started:.2f} s")
    return 0


def check_arguments(args) -> None:
    """UserError for method options out of range (before anything is loaded)."""
    from cnnscope.errors import check_whole

    for what, value in (("samples", args.samples), ("window", args.window), ("stride", args.stride)):
        check_whole(what, value, minimum=1)
    if not 0 <= args.noise <= 10:
        raise UserError(f"--noise must be in 0..10, got {args.noise}")
    if args.window > 28:
        raise UserError(f"--window {args.window} is larger than the 28x28 image")


def check_model_arguments(args, model, methods: list[str]) -> None:
    """UserError unless --layer is a conv or pool layer (for Grad-CAM) and --target a class of `model`."""
    if "gradcam" in methods:
        model.check_layer(args.layer)
        if not model.is_spatial(args.layer):
            spatial = [name for name in model.layer_names if model.is_spatial(name)]
            raise UserError(f"Grad-CAM needs a conv or pool layer, not {args.layer!r}; choose one of: {', '.join(spatial)}")
    if args.target is not None and not 0 <= args.target < model.num_classes:
        raise UserError(f"--target {args.target} is out of range 0..{model.num_classes - 1}")


def method_options(args) -> dict[str, dict]:
    """The options of each attribution method, from the command line."""
    return {"smoothgrad": {"samples": args.samples, "noise": args.noise, "seed": args.seed},
            "gradcam": {"layer": args.layer},
            "occlusion": {"window": args.window, "stride": args.stride}}


def image_details(images, maps: dict, targets, probabilities) -> list[dict]:
    """Per image: where it came from, the prediction, the explained class and each method's map."""
    import numpy as np

    from cnnscope.analysis.attribution import ink_share

    details = []
    for i, image in enumerate(images):
        entry = {**image.describe(), "predicted": int(np.argmax(probabilities[i])),
                 "probabilities": [round(float(p), 6) for p in probabilities[i]], "target": int(targets[i]), "methods": {}}
        for method, values in maps.items():
            entry["methods"][method] = {"ink_share": round(ink_share(values[i], image.pixels), 4),
                                        "max": float(values[i].max()), "min": float(values[i].min()),
                                        "map": np.round(values[i], 6).tolist()}
        details.append(entry)
    return details


def sidecar(args, methods: list[str], titles: dict, options: dict, details: list[dict], path: Path) -> dict:
    """The JSON beside the picture: the methods, their options and titles, and every image's maps."""
    from cnnscope.figures.attribution import METHOD_TITLES

    return {
        "command": "explain", "model": str(args.model or "default"), "methods": methods,
        "method_titles": {m: titles.get(m, METHOD_TITLES[m]) for m in methods},
        "options": {m: options[m] for m in methods if m in options},
        "ink_share_definition": "share of the positive attribution on pixels with >= 30% ink",
        "images": details, "picture": path.name}
