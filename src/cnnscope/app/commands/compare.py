"""`cnnscope compare`: do two training runs learn the same maps? CKA, unit matching, matched OIPs."""

from __future__ import annotations

from pathlib import Path

from cnnscope.app.commands import add_data_option, add_device_option

NAME = "compare"
ORDER = 75
HELP = "compare models layer by layer (linear CKA) and unit by unit (matched maps, their OIPs)"
DESCRIPTION = (
    "Compare two or more checkpoints (or every run of a sweep folder) on the test images: linear "
    "CKA between every pair of layers (minibatch estimate with the unbiased HSIC), and per "
    "conv/dense layer the one-to-one matching of units by the correlation of their activations. "
    "Writes cka.png, cka_diagonal.png, matches.png, pairs_<layer>.png (matched units side by side: "
    "OIPs and top-9 test images, best first, worst last) and compare.json; with more than two "
    "models the N x N tables (pairwise.png)."
)
SWEEP_TABLE = "sweep.json"


def add_arguments(parser) -> None:
    from cnnscope.analysis.compare import THRESHOLD

    parser.add_argument("models", nargs="+", metavar="DIR",
                        help="checkpoint folders (two or more), or one sweep folder (all its runs)")
    parser.add_argument("--out", default="reports/compare", metavar="DIR", help="output folder (default: reports/compare)")
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help="use the first N test images (default: all 10000)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per minibatch (default 500)")
    parser.add_argument("--layers", default=None, metavar="LIST",
                        help="conv/dense layers to match unit by unit, e.g. Conv2D_3,Dense_1 (default: all shared)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help=f"correlation from which a unit has a partner (default {THRESHOLD})")
    parser.add_argument("--per-position", action="store_true",
                        help="correlate maps over images and positions instead of their spatial means")
    parser.add_argument("--pictures", default=None, metavar="LIST",
                        help="layers whose matched pairs are pictured (OIPs cost ~10 s per layer and model): "
                             "a list, 'all' or 'none' (default: Conv2D_3, else the last matched conv layer)")
    parser.add_argument("--best", type=int, default=6, help="best matched pairs shown per layer (default 6)")
    parser.add_argument("--worst", type=int, default=3, help="worst matched pairs shown per layer (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the OIPs' noise (default 0)")
    parser.add_argument("--oip-steps", type=int, default=600, help="ascent steps of the OIPs (default 600, the articles')")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the cores not busy with other work when the command starts)")
    add_data_option(parser)
    add_device_option(parser)


def run(args) -> int:
    import time

    from cnnscope.files import check_output_folder, written_together
    from cnnscope.runtime import default_threads, pick_device, using_threads

    started = time.perf_counter()
    device = pick_device(args.device)
    folders = model_folders([Path(p).expanduser() for p in args.models])
    layers = _names(args.layers)
    check_output_folder(Path(args.out).expanduser())
    with using_threads(args.threads or default_threads()), written_together():
        written = write_comparison(folders, Path(args.out).expanduser(), data=args.data, device=device,
                                   images=args.images, batch_size=args.batch_size, layers=layers,
                                   threshold=args.threshold, per_position=args.per_position,
                                   pictures=_names(args.pictures), best=args.best, worst=args.worst, seed=args.seed,
                                   oip_steps=args.oip_steps)
    print(f"wrote {len(written)} files to {args.out} ({time.perf_counter() - started:.0f} s)")
    return 0


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def model_folders(paths: list[Path]) -> list[Path]:
    """The checkpoint folders to compare: the given ones, or a sweep folder's runs.

    A single folder that is no checkpoint but holds checkpoint folders (a `cnnscope sweep`
    output) stands for all of them, in name order.
    """
    from cnnscope.errors import CheckpointError, UserError
    from cnnscope.nn.checkpoint import CONFIG, read_config

    if len(paths) == 1 and paths[0].is_dir() and not (paths[0] / CONFIG).exists():
        runs = sorted(p for p in paths[0].iterdir() if (p / CONFIG).exists())
        if not runs:
            raise CheckpointError(f"{paths[0]} is neither a checkpoint nor a sweep folder with checkpoints in it",
                                  "models")
        paths = runs
    for path in paths:
        if not path.is_dir():
            raise CheckpointError(f"{path} is not a folder (expected a checkpoint folder)", "models")
        read_config(path)  # one-line error if it is no checkpoint
    if len(paths) < 2:
        raise UserError(f"need at least two models to compare, got {len(paths)}", "models")
    return paths


def model_names(folders: list[Path]) -> list[str]:
    """Short distinct names: the folder names, or the whole paths if those repeat."""
    names = [folder.name for folder in folders]
    return names if len(set(names)) == len(names) else [str(folder) for folder in folders]


def write_comparison(folders: list[Path], out: Path, *, data=None, device="cpu", images: int | None = None,
                     batch_size: int = 500, layers: list[str] | None = None, threshold: float = 0.5,
                     per_position: bool = False, pictures: list[str] | None = None, best: int = 6, worst: int = 3, seed: int = 0,
                     oip_steps: int = 600, progress: bool = True) -> dict[str, Path]:
    """Compare the checkpoints and write every figure and compare.json into `out`.

    `pictures`: the matched layers whose pairs are pictured (['all'], ['none'], or None for
    Conv2D_3 or else the last matched conv layer); the other options are those of the command.

    Returns:
        figure name -> the file written (for the report).
    """
    from cnnscope.analysis.compare import compare_models, comparison_to_json
    from cnnscope.data.mnist import load_mnist_for_model, to_tensor
    from cnnscope.errors import check_whole
    from cnnscope.files import check_output_folder, write_json
    from cnnscope.nn.checkpoint import load_checkpoint

    check_output_folder(out)
    check_whole("best", best, minimum=0)
    check_whole("worst", worst, minimum=0)
    check_whole("oip steps", oip_steps, minimum=1)
    loaded = [load_checkpoint(folder, device) for folder in folders]
    models = [model for model, _ in loaded]
    mnist = load_mnist_for_model(loaded[0][1], data)
    count = len(mnist.test_y) if images is None else check_whole("images", images, minimum=4)
    test_x = mnist.test_x[:count]
    comparison = compare_models(models, to_tensor(test_x), names=model_names(folders), match_layers=layers,
                                batch_size=batch_size, threshold=threshold, per_position=per_position)
    pictured = pictured_layers(comparison.match_layers, models[0], pictures)
    out.mkdir(parents=True, exist_ok=True)
    oips = {"seed": seed, "steps": oip_steps, "progress": progress}
    written = _write_figures(comparison, models, test_x, out, pictured, (best, worst), oips)
    body = comparison_to_json(comparison)
    body["folders"] = [str(folder) for folder in folders]
    body["data"] = {"split": mnist.split, "seed": mnist.seed, "test_images": count}
    body["figures"] = {name: path.name for name, path in written.items()}
    written["json"] = write_json(out / "compare.json", body)
    return written


def pictured_layers(matched: list[str], model, pictures: list[str] | None) -> list[str]:
    """The matched layers to picture (see `write_comparison`); a UserError for one not matched."""
    from cnnscope.errors import UserError

    if pictures is None:
        convs = [name for name in matched if model.layer_spec(name).kind == "conv"]
        return ["Conv2D_3"] if "Conv2D_3" in matched else convs[-1:]
    if pictures == ["all"]:
        return list(matched)
    if pictures == ["none"]:
        return []
    for name in pictures:
        if name not in matched:
            raise UserError(f"layer {name!r} is not matched; matched layers: {', '.join(matched) or 'none'}", "pictures")
    return pictures


def _write_figures(comparison, models, test_x, out: Path, pictured: list[str], shown: tuple[int, int],
                   oips: dict) -> dict[str, Path]:
    from cnnscope.analysis.compare import pairwise_tables
    from cnnscope.figures import compare as F
    from cnnscope.files import save_figure, save_image

    written = {"cka_diagonal": save_figure(out / "cka_diagonal.png", F.cka_diagonal_figure(comparison))}
    if len(comparison.names) > 2:
        tables = pairwise_tables(comparison)
        written["pairwise_cka"] = save_figure(out / "pairwise_cka.png", F.pairwise_figure(comparison.names, tables["cka"]))
        if comparison.match_layers:
            written["pairwise_match"] = save_figure(out / "pairwise_match.png", F.pairwise_figure(
                comparison.names, tables["median_match"], "median matched correlation"))
        return written
    pair = comparison.pair(0, 1)
    written["cka"] = save_figure(out / "cka.png", F.cka_heatmap(comparison))
    if not pair.matches:
        return written
    written["matches"] = save_figure(out / "matches.png", F.match_histograms(
        list(pair.matches.values()), f"{comparison.names[0]} vs {comparison.names[1]}: one-to-one unit matching"))
    for layer in pictured:
        match = pair.matches[layer]
        ranks = shown_ranks(live_ranks(match), *shown)
        if not ranks:
            continue
        images = [matched_oips(model, layer, [int(match.pairs[r, side]) for r in ranks], **oips)
                  for side, model in enumerate(models)]
        picture = F.matched_pairs_picture(match, ranks, images[0], images[1], comparison.top_images[0][layer],
                                          comparison.top_images[1][layer], test_x, comparison.names,
                                          match.dead_a, match.dead_b)
        written[f"pairs_{layer}"] = save_image(out / f"pairs_{layer}.png", picture)
    return written


def live_ranks(match) -> list[int]:
    """Ranks of the matched pairs in which at least one unit is alive (two dead units say nothing)."""
    if match.dead_a is None or match.dead_b is None:
        return list(range(len(match.matched)))
    return [rank for rank, (a, b) in enumerate(match.pairs) if not (match.dead_a[a] and match.dead_b[b])]


def shown_ranks(ranks: list[int], best: int, worst: int) -> list[int]:
    """The pairs to picture: the `best` first of `ranks` and the `worst` last ones (no repeats)."""
    first = ranks[:best]
    last = [rank for rank in ranks[max(len(ranks) - worst, 0):] if rank not in first]
    return first + last


def matched_oips(model, layer: str, units: list[int], seed: int = 0, steps: int = 600, progress: bool = False):
    """The OIPs of the units (the articles' algorithm with `steps` steps; each unit's noise
    seeded by `seed` and its name, as in `cnnscope oip`)."""
    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.oip import find_oips, map_objectives

    return find_oips(model, map_objectives(model, layer, units), AscentSettings(steps=steps), seed=seed,
                     progress=progress).images
