"""`cnnscope patterns`: what the images of two digits have in common and what tells them apart."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cnnscope.app.commands import add_common_options
from cnnscope.errors import UserError

NAME = "patterns"
ORDER = 31
HELP = "class patterns of two digits (the articles' 4 vs 9): mean grids, common points, separating maps"
DESCRIPTION = (
    "Over N images per digit: the mean activation grid of each digit with its common points "
    "circled, the maps (or dense nodes) that separate the two digits best ranked by ROC AUC or "
    "standardised mean difference, and the most confusable images. Writes PNGs and one JSON."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnscope.analysis.patterns import DEFAULT_COUNT, DEFAULT_LEVEL, DEFAULT_SHARE, MEASURES
    from cnnscope.figures.render import CMAPS

    add_common_options(parser)
    parser.add_argument("--digits", default="4,9", metavar="A,B", help="two different digits (default 4,9)")
    parser.add_argument("--layer", default=None, metavar="NAMES",
                        help="comma-separated layers (default: the last conv and the first dense layer, "
                             "Conv2D_3,Dense_1 for the seed CNN, as in the articles)")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, metavar="N",
                        help=f"images per digit, the first N of the set (default {DEFAULT_COUNT})")
    parser.add_argument("--set", default="test", choices=("test", "train"), help="data set (default test)")
    parser.add_argument("--measure", default="auc", choices=MEASURES,
                        help="ranking of separating maps: auc (ROC AUC of the per-image map mean) or smd "
                             "(standardised mean difference); default auc")
    parser.add_argument("--share", type=float, default=DEFAULT_SHARE, metavar="S",
                        help=f"a common point is active in at least this share of a digit's images (default {DEFAULT_SHARE})")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, metavar="L",
                        help=f"a node is active at >= L x the layer's largest value for the image (default {DEFAULT_LEVEL})")
    parser.add_argument("--top", type=int, default=16, metavar="K", help="separating maps to show (default 16)")
    parser.add_argument("--confusable", type=int, default=8, metavar="K",
                        help="most confusable images to show per digit (default 8)")
    parser.add_argument("--cmap", default="viridis", choices=CMAPS, metavar="CMAP", help="colour map (default viridis)")
    parser.add_argument("--out", default="out/patterns", metavar="DIR", help="output folder (default out/patterns)")


def run(args) -> int:
    from cnnscope.analysis.patterns import check_options, class_patterns, pattern_layers
    from cnnscope.app.commands.activations import load_model_for
    from cnnscope.app.parsing import parse_digits, parse_layers

    started = time.perf_counter()
    out = check_arguments(args)
    model, config = load_model_for(args)
    digits = parse_digits(args.digits, model.num_classes)
    layers = parse_layers(model, args.layer) if args.layer else pattern_layers(model)
    check_options(args.measure, args.level, args.share)
    mnist, indices, tensors = load_digits(args, config, digits)
    results = class_patterns(model, tensors[0], tensors[1], layers, digits, measure=args.measure,
                             level=args.level, min_share=args.share)
    tag = f"{digits[0]}v{digits[1]}"
    pictures = {}
    for result in results.values():
        pictures.update(pattern_pictures(args, result, out, tag))
    confusables = {}
    if args.confusable:
        picture, confusables = confusable_rows(args, model, mnist, digits, indices, tensors)
        pictures[out / f"confusable_{tag}.png"] = picture
    summary = {
        "command": "patterns",
        "model": str(args.model or "default"),
        "set": args.set,
        "digits": list(digits),
        "indices": {str(d): [int(i) for i in idx] for d, idx in zip(digits, indices, strict=True)},
        "layers": {layer: result.describe(args.top) for layer, result in results.items()},
        "most_confusable": confusables,
        "pictures": [path.name for path in pictures],
    }
    write_files(args, out / f"patterns_{tag}.json", summary, pictures, results)
    print(f"done in {time.perf_counter() - started:.2f} s")
    return 0


def check_arguments(args) -> Path:
    """The output folder, after checking the whole-number options; UserError for bad ones."""
    from cnnscope.errors import check_whole
    from cnnscope.files import check_output_folder

    check_whole("count", args.count, minimum=1)
    check_whole("top", args.top, minimum=1)
    check_whole("confusable", args.confusable, minimum=0)
    out = Path(args.out).expanduser()
    if out.suffix:
        raise UserError(f"--out {out} must be a folder (patterns writes several files)")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    return check_output_folder(out)


def load_digits(args, config: dict, digits: tuple[int, int]):
    """The data set, the positions of the first --count images of each digit, and those images as tensors."""
    from cnnscope.analysis.patterns import class_indices
    from cnnscope.data.mnist import load_mnist_for_model, to_tensor

    mnist = load_mnist_for_model(config, args.data)  # the model's split, so indices match
    images, labels = mnist.images(args.set)
    indices = [class_indices(labels, digit, args.count, f"{args.set} images") for digit in digits]
    return mnist, indices, [to_tensor(images[i]) for i in indices]


def pattern_pictures(args, result, out: Path, tag: str) -> dict[Path, object]:
    """One layer's mean-grid picture and separating-maps picture, by the path they go to."""
    from cnnscope.figures.patterns import pattern_figure, separating_figure

    return {out / f"patterns_{tag}_{result.layer}.png": pattern_figure(result, args.cmap, split=args.set),
            out / f"separating_{tag}_{result.layer}.png": separating_figure(result, args.top, args.cmap)}


def confusable_rows(args, model, mnist, digits, indices, tensors) -> tuple[object, dict]:
    """The picture of each digit's images most like the other digit, and their numbers for the JSON."""
    from cnnscope.analysis.patterns import most_confusable
    from cnnscope.data.images import dataset_images
    from cnnscope.figures.patterns import confusable_figure

    a, b = digits
    rows, confusables = [], {}
    for which, (digit, other) in enumerate(((a, b), (b, a))):
        items = most_confusable(model, tensors[which], other, args.confusable)
        shown = dataset_images(mnist, [int(indices[which][item.position]) for item in items], args.set)
        rows.append((f"the \"{digit}\"s most like a \"{other}\" (of the {args.count} used)", shown, items, other))
        confusables[str(digit)] = [{"index": int(indices[which][item.position]), f"p_{other}": round(item.probability_other, 6),
                                    "predicted": item.predicted} for item in items]
    return confusable_figure(rows), confusables


def write_files(args, json_path: Path, summary: dict, pictures: dict, results: dict) -> None:
    """Write the pictures and the JSON, and say what was found and written."""
    from cnnscope.files import save_image, write_json, written_together

    with written_together():
        for path, picture in pictures.items():
            save_image(path, picture)
        json_path = write_json(json_path, summary)
    for layer, result in results.items():
        best = ", ".join(f"#{r[result.unit]} ({args.measure} {r[args.measure]:+.3f}, higher for {r['higher_for']})"
                         for r in result.top(5))
        print(f"{layer}: best separating {result.unit}s: {best}")
    for path in pictures:
        print(f"wrote {path}")
    print(f"wrote {json_path}")
