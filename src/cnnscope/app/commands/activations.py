"""`cnnscope activations`: grids of every map of a layer (or every node) for chosen images."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cnnscope.app.commands import add_common_options
from cnnscope.app.limits import MAX_COLUMNS
from cnnscope.errors import UserError

NAME = "activations"
ORDER = 30
HELP = "show the output of every map (or node) of a layer for dataset images or your own picture"
DESCRIPTION = (
    "Grids of all maps of a conv/pool layer (8 per row, top-down) or all nodes of a dense layer, "
    "the input digit beside the grid. Several --index/--image values give panels side by side. "
    "Writes a PNG and a JSON sidecar (shape, min, max, mean per map) per layer."
)


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """--index / --set / --image, shared with `cnnscope explain`."""
    parser.add_argument("--index", action="append", default=[], metavar="N[,N...]",
                        help="image position in the data set (repeat or comma-separate for several)")
    parser.add_argument("--set", default="test", choices=("test", "train"), help="data set for --index (default test)")
    parser.add_argument("--image", action="append", default=[], metavar="FILE",
                        help="your own picture (PNG, JPEG, ...), made MNIST-style; repeat for several")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnscope.figures.render import CMAPS, SCALES

    add_common_options(parser)
    parser.add_argument("--layer", default=None, metavar="NAME",
                        help="layer name, several comma-separated, or 'all' (one figure per layer; "
                             "default: the first layer, Conv2D_1)")
    add_image_options(parser)
    parser.add_argument("--cmap", default="viridis", choices=CMAPS, metavar="CMAP",
                        help=f"colour map: {', '.join(CMAPS)} (default viridis)")
    parser.add_argument("--scale", default="shared", choices=SCALES,
                        help="shared: one colour range for all maps and images; per_map: each map its own; "
                             "standardize: the articles' standardise-and-clip view (default shared)")
    parser.add_argument("--numbers", action="store_true", help="write map / node numbers into the tiles")
    parser.add_argument("--columns", type=int, default=None, metavar="N",
                        help=f"tiles per row (default 8, at most {MAX_COLUMNS})")
    parser.add_argument("--out", default="out/activations", metavar="PATH",
                        help="folder, or a .png file (with several layers: FILE_<layer>.png); default out/activations")


def load_inputs(args, model_config: dict) -> list:
    """The DigitImages named by --index (with --set) and --image; UserError for bad ones."""
    from cnnscope.app.parsing import parse_indices
    from cnnscope.data.images import dataset_images, file_image
    from cnnscope.figures.activations import MAX_PANELS

    indices = parse_indices(args.index)
    if not indices and not args.image:
        raise UserError("give at least one --index N or --image FILE")
    if len(indices) + len(args.image) > MAX_PANELS:
        raise UserError(f"at most {MAX_PANELS} images at once, got {len(indices) + len(args.image)}")
    images = []
    if indices:
        from cnnscope.data.mnist import load_mnist_for_model

        mnist = load_mnist_for_model(model_config, args.data)  # the model's split, so indices match
        images += dataset_images(mnist, indices, args.set)
    images += [file_image(path) for path in args.image]
    return images


def load_model_for(args):
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.runtime import pick_device

    device = pick_device(args.device)
    return load_model(args.model, device=device)


def images_tag(images) -> str:
    """A short file-name part naming the images: test19, test19_test20, mydigit, ..."""
    tags = [f"{image.split}{image.index}" if image.index is not None else Path(image.name).stem for image in images]
    tags = ["".join(c if c.isalnum() or c in "-_" else "-" for c in tag) for tag in tags]
    return "_".join(tags) if len(tags) <= 4 else f"{tags[0]}_and_{len(tags) - 1}_more"


def output_paths(out: Path, tag: str, names: list[str], prefix: str = "") -> dict[str, Path]:
    """PNG path per name: inside folder `out`, or `out` itself (one name) / out_<name>.png."""
    if out.suffix.lower() == ".png":
        if len(names) == 1:
            return {names[0]: out}
        return {name: out.with_name(f"{out.stem}_{name}.png") for name in names}
    if out.suffix:
        raise UserError(f"--out {out} must be a folder or a .png file")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    return {name: out / f"{prefix}{tag}_{name}.png" for name in names}


def check_output_files(paths: dict[str, Path]) -> dict[str, Path]:
    """`paths` if every picture and its JSON sidecar can be written (checked before the work), else UserError."""
    from cnnscope.files import check_output_file

    for path in paths.values():
        check_output_file(path)
        check_output_file(path.with_suffix(".json"))
    return paths


def run(args) -> int:
    from cnnscope.app.parsing import bounded, parse_layers
    from cnnscope.figures.activations import layer_figures
    from cnnscope.files import save_image, write_json, written_together

    started = time.perf_counter()
    if args.columns is not None:
        bounded("columns", args.columns, 1, MAX_COLUMNS)
    model, config = load_model_for(args)
    layers = parse_layers(model, args.layer)
    images = load_inputs(args, config)
    paths = check_output_files(output_paths(Path(args.out).expanduser(), images_tag(images), layers))
    figures = layer_figures(model, images, layers, cmap=args.cmap, scale=args.scale, numbers=args.numbers,
                            columns=args.columns)
    with written_together():
        for layer, figure in figures.items():
            path = paths[layer]
            save_image(path, figure.image)
            write_json(path.with_suffix(".json"), sidecar(args, model, figure, path))
    for layer in figures:
        print(f"{layer}: {paths[layer]} (+ .json)")
    for stat in next(iter(figures.values())).stats:
        label = f", label {stat['label']}" if stat["label"] is not None else ""
        print(f"{stat['name']}{label}: predicted {stat['predicted']} ({max(stat['probabilities']):.1%})")
    print(f"done in {time.perf_counter() - started:.2f} s")
    return 0


def sidecar(args, model, figure, path: Path) -> dict:
    """The JSON beside one layer's picture: the request, the colour range, the layout and the numbers."""
    return {
        "command": "activations",
        "model": str(args.model or "default"),
        "layer": figure.layer,
        "shape": list(model.output_shape(figure.layer)),
        "cmap": args.cmap,
        "scale": args.scale,
        "color_range": [figure.color_scale.vmin, figure.color_scale.vmax],
        "color_unit": figure.color_scale.unit,
        "columns": figure.layout.columns,
        "tile_pixels": figure.layout.factor,
        "images": figure.stats,
        "picture": path.name,
    }
