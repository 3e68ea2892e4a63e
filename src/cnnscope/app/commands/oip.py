"""`cnnscope oip`: optimal input patterns of maps, nodes or logits (a PNG, an evolution strip, a JSON)."""

from __future__ import annotations

from pathlib import Path

from cnnscope.app.commands import add_common_options, add_parametrization_options
from cnnscope.app.limits import MAX_COLUMNS, MAX_IMAGE_SIZE, MAX_PRECURSOR, MAX_STARTS, MAX_TEXT

NAME = "oip"
ORDER = 40
HELP = "find the input pattern (OIP) that drives a map, node or logit to its maximum"
DESCRIPTION = (
    "Gradient ascent on the input image, from random noise on several length scales, to maximise "
    "the mean activation of maps (--maps), single nodes (--node) or class logits (--logit). "
    "Writes a picture (labelled tiles: plain viridis + contrast-enhanced), an evolution strip "
    "and a JSON file with every parameter and each target's loss trajectory."
)


def add_arguments(parser) -> None:
    add_common_options(parser)
    _add_target_options(parser.add_argument_group("what to visualise (default: all maps of --layer)"))
    _add_ascent_options(parser.add_argument_group("ascent (defaults: the articles' algorithm)"))
    _add_output_options(parser.add_argument_group("output"))


def _add_target_options(what) -> None:
    what.add_argument("--layer", default=None,
                      help="layer of --maps / --node (default: the deepest conv layer, Conv2D_3 in the articles' network)")
    what.add_argument("--maps", default=None, metavar="LIST",
                      help="maps (dense layers: units): 'all', '120', '0-15,56' (default: all); numbers are "
                           f"checked against the layer's maps before ranges are expanded, lists are at most "
                           f"{MAX_TEXT} characters")
    what.add_argument("--node", action="append", default=None, metavar="MAP[:Y,X]",
                      help="one node: conv 'MAP:Y,X' (no Y,X: the centre), dense 'UNIT'; repeatable")
    what.add_argument("--logit", default=None, metavar="LIST",
                      help="class logits: '4', '1,7' or 'all' ('what a 4 looks like to the network'); checked "
                           "against the classes before ranges are expanded")


def _add_ascent_options(ascent) -> None:
    """The loop and its pieces: steps, rule, strategy, starts, stopping, parametrisation,
    regularisers and transforms."""
    ascent.add_argument("--steps", type=float, default=600, help="ascent steps (default 600)")
    ascent.add_argument("--epsilon", type=float, default=0.01, help="step size (default 0.01)")
    ascent.add_argument("--rule", default="normalized", choices=["normalized", "adam"],
                        help="step rule: gradient / RMS (articles) or Adam (default normalized)")
    ascent.add_argument("--strategy", default="superposition", choices=["superposition", "coarse-to-fine"],
                        help="superposition: all noise scales in the start (the articles' strategy 0, default); "
                             "coarse-to-fine: the longest scale first, shorter ones added stage by stage "
                             "(their strategy 1; --stages sets the steps, replacing --steps)")
    ascent.add_argument("--stages", default="20,40,80,400", metavar="LIST",
                        help="coarse-to-fine: steps of each stage, one per noise scale (default 20,40,80,400)")
    ascent.add_argument("--scales", default="3,7,14,28", metavar="LIST",
                        help="noise grid sizes (default 3,7,14,28)")
    ascent.add_argument("--factors", default=None, metavar="LIST",
                        help="weight of each noise scale (default 0.5 each)")
    ascent.add_argument("--restarts", type=float, default=None,
                        help=f"starts per target, best kept (default 1; 2 with --fast; at most {MAX_STARTS})")
    ascent.add_argument("--starts", type=float, default=None, metavar="N",
                        help="N starts per target, all kept: a gallery picture side by side and how alike "
                             f"the starts' patterns are (stable / start-dependent); 2..{MAX_STARTS}")
    ascent.add_argument("--precursor", type=float, default=0, metavar="K",
                        help=f"screen K long-range noise starts per target, run the best (default 0: off; at most "
                             f"{MAX_PRECURSOR})")
    ascent.add_argument("--precursor-steps", type=float, default=12, help="steps of the precursor screening (default 12)")
    ascent.add_argument("--fast", action="store_true",
                        help="time-to-quality preset: two starts per target race for 15 steps, the better one "
                             "goes on to 95 steps falling from 0.8 to 0.01, early stop per target (4.0-4.7x faster "
                             "than the articles' rule, as high for 95-99%% of the live maps, measured on 4 models)")
    ascent.add_argument("--race", type=float, default=None, metavar="N",
                        help="with several starts per target: after N steps only the best one goes on "
                             "(default 0: off; 15 with --fast)")
    ascent.add_argument("--early-stop", action="store_true",
                        help="stop a target after 4 successive relative loss changes below --tolerance")
    ascent.add_argument("--tolerance", type=float, default=5e-4, help="convergence threshold (default 5e-4)")
    ascent.add_argument("--jitter", type=float, default=0, help="random roll of up to N pixels per step (default 0)")
    ascent.add_argument("--blur", type=float, default=0.0, help="Gaussian blur sigma after each step (default 0)")
    ascent.add_argument("--tv", type=float, default=0.0, help="total-variation penalty weight (default 0)")
    add_parametrization_options(ascent)
    ascent.add_argument("--diverse", type=float, default=0, metavar="K",
                        help="K starts per target in one batch, pushed apart by a diversity term (Olah 2017: "
                             "cosine similarity of Gram matrices); all K in the gallery picture (default 0: off)")
    ascent.add_argument("--diversity-weight", type=float, default=1.0, metavar="W",
                        help="weight of the diversity term (default 1)")
    ascent.add_argument("--robust", action="store_true",
                        help="transformation robustness sized to 28 px: each step a random shift of up to 7%% of "
                             "the side (2 px), a zoom of +-5%% and a turn of up to 5 degrees")
    ascent.add_argument("--shift", type=float, default=None, metavar="F",
                        help="random roll of up to F x the image side per step (--robust: 0.07)")
    ascent.add_argument("--zoom", type=float, default=None, metavar="F",
                        help="random rescaling by 1 +- F per step (--robust: 0.05)")
    ascent.add_argument("--rotate", type=float, default=None, metavar="DEG",
                        help="random turn of up to DEG degrees per step (--robust: 5)")
    ascent.add_argument("--start", default=None, metavar="FILE|test:N",
                        help="start from a picture file or a test image instead of noise")
    ascent.add_argument("--size", type=float, default=None,
                        help=f"image size for conv layers (default: the model's, 28; at most {MAX_IMAGE_SIZE})")
    ascent.add_argument("--seed", type=float, default=0, help="seed of the noise (default 0)")
    ascent.add_argument("--snapshots", type=float, default=6, metavar="N",
                        help="log-spaced snapshots between start and end, for the strip and the convergence "
                             "report (default 6, the articles')")


def _add_output_options(output) -> None:
    output.add_argument("--evaluate", action="store_true",
                        help="also measure each target on the 10000 test images: dataset max, top-9 images and "
                             "the quality report (majority success, natural-path similarity, pixels outside the "
                             "valid range, clipped activation) in the JSON and as a marker under each tile")
    output.add_argument("--examples", action="store_true",
                        help="show each target's top-9 test images next to its OIP in the picture (implies --evaluate)")
    output.add_argument("--examples-spread", action="store_true",
                        help="also 9 images from the middle and the bottom of the ranking (implies --examples)")
    output.add_argument("--out", default=None, metavar="PATH",
                        help="PNG file or folder (default: oip_<layer>.png); the JSON and strip go next to it")
    output.add_argument("--strip", default=None, metavar="TARGET",
                        help="target for the evolution strip, e.g. 120 (default: the strongest)")
    output.add_argument("--gif", action="store_true", help="also write an animated GIF of the evolution")
    output.add_argument("--columns", type=float, default=None, help=f"tiles per row (default 8, at most {MAX_COLUMNS})")
    output.add_argument("--chunk", type=float, default=None,
                        help="images per batch (default 128 per CPU thread, 512 on a GPU)")
    output.add_argument("--threads", type=float, default=None,
                        help="CPU threads (default: the cores not busy with other work when the command starts)")
    output.add_argument("--quiet", action="store_true", help="no progress bars")


# ---- parsing -----------------------------------------------------------------------------------


def build_targets(args, model) -> tuple[list, str]:
    """The objectives asked for and a short name for the output file."""
    from cnnscope.app.parsing import parse_list, parse_node
    from cnnscope.errors import UserError
    from cnnscope.optvis import objectives as O
    from cnnscope.optvis.oip import logit_objectives, map_objectives

    chosen = [flag for flag, value in (("--maps", args.maps), ("--node", args.node), ("--logit", args.logit)) if value]
    if len(chosen) > 1:
        raise UserError(f"choose one of --maps, --node, --logit (got {' and '.join(chosen)})")
    if args.logit:
        classes = parse_list(args.logit, "logit", model.num_classes)
        return logit_objectives(model, classes), "logits"
    if args.layer is None:
        convs = model.layers_of_kind("conv")
        if not convs:
            raise UserError(f"the model has no conv layer; give --layer (valid layers: {', '.join(model.layer_names)})")
        args.layer = convs[-1]
    model.check_layer(args.layer)
    if args.node:
        targets = [parse_node(text, args.layer, model) for text in args.node]
        for target in targets:
            O.validate(target, model)
        return targets, f"{args.layer}_nodes"
    count = model.output_shape(args.layer)[0]
    maps = parse_list(args.maps or "all", "map" if model.is_spatial(args.layer) else "unit", count)
    return map_objectives(model, args.layer, maps), args.layer


def output_paths(out: str | None, stem: str) -> dict[str, Path]:
    from cnnscope.errors import UserError

    default_name = f"oip_{stem}.png"
    if out is None:
        main = Path(default_name)
    else:
        path = Path(out).expanduser()
        if path.is_dir() or out.endswith(("/", "\\")):
            main = path / default_name
        elif path.suffix.lower() == ".png":
            main = path
        else:
            raise UserError(f"--out {out!r} must be a .png file or an existing folder")
    return {"png": main, "strip": main.with_name(main.stem + "_evolution.png"),
            "gallery": main.with_name(main.stem + "_gallery.png"),
            "gif": main.with_suffix(".gif"), "json": main.with_suffix(".json")}


def check_output_paths(paths: dict[str, Path], gif: bool, gallery: bool) -> None:
    """UserError now, before the ascent, if any of the files cannot be written."""
    from cnnscope.files import check_output_file

    for name, path in paths.items():
        if (name != "gif" or gif) and (name != "gallery" or gallery):
            check_output_file(path)


def settings_from(args):
    from cnnscope.app.parsing import whole
    from cnnscope.errors import UserError
    from cnnscope.optvis.ascent import AscentSettings

    common = dict(jitter=whole("jitter", args.jitter, 0), blur=args.blur, tv_weight=args.tv,
                  seed=whole("seed", args.seed), snapshot_count=whole("snapshots", args.snapshots, 0),
                  param=args.param, valid_pixels=bool(args.valid_pixels), **_robustness(args))
    race = {} if args.race is None else {"race": whole("race", args.race, 0)}
    if args.fast:  # the preset, with --steps/--epsilon/--tolerance only where they were changed
        if args.rule != "normalized":
            raise UserError("--fast uses the normalized rule with a falling step; drop --rule", "rule")
        changed = {name: value for name, value, default in (("steps", whole("steps", args.steps, 1), 600),
                                                             ("epsilon", args.epsilon, 0.01),
                                                             ("tolerance", args.tolerance, 5e-4)) if value != default}
        return AscentSettings.fast(**common, **changed, **race).check()
    return AscentSettings(
        steps=whole("steps", args.steps, 1), epsilon=args.epsilon, rule=args.rule,
        early_stop=bool(args.early_stop), tolerance=args.tolerance, **common, **race,
    ).check()


def _robustness(args) -> dict:
    """--shift, --zoom, --rotate, with --robust's sizes for the ones not given."""
    from cnnscope.optvis.transforms import ROBUST_ROTATE, ROBUST_SHIFT, ROBUST_ZOOM

    defaults = {"shift": ROBUST_SHIFT, "zoom": ROBUST_ZOOM, "rotate": ROBUST_ROTATE} if args.robust else {}
    return {name: float(getattr(args, name)) if getattr(args, name) is not None else defaults.get(name, 0.0)
            for name in ("shift", "zoom", "rotate")}


def strategy_from(args):
    """--strategy and --stages as a strategy object of the OIP engine."""
    from cnnscope.app.parsing import parse_numbers
    from cnnscope.optvis.strategies import CoarseToFine, Superposition

    if args.strategy == "superposition":
        return Superposition()
    return CoarseToFine(parse_numbers(args.stages, "stage steps", int))


def load_start(args, model, mnist):
    from cnnscope.app.parsing import bounded, number, whole
    from cnnscope.errors import UserError
    from cnnscope.optvis.starts import from_dataset, from_file

    if args.start is None:
        return None
    text = args.start
    if text.startswith(("test:", "train:")):
        which, _, index = text.partition(":")
        return from_dataset(mnist, whole(f"{which} image index", number(index, f"{which} image index")), which)
    if not Path(text).expanduser().exists():
        raise UserError(f"start image {text} not found (give a picture file or test:INDEX)")
    size = model.spec.image_size if args.size is None else bounded("size", args.size, 1, MAX_IMAGE_SIZE)
    return from_file(Path(text).expanduser(), size)


# ---- running -----------------------------------------------------------------------------------
def run(args) -> int:
    from cnnscope.runtime import default_threads, using_threads

    job = prepare(args)  # everything is checked before any work and before any file is written
    from cnnscope.files import written_together

    with using_threads(job["threads"] or default_threads()):
        result = compute(args, job)
    with written_together():  # all files or none: a failing later file leaves no first picture behind
        write_outputs(args, job, result)
    print_summary(job, result)
    return 0


def prepare(args) -> dict:
    """Every option checked, the model and targets loaded, the output paths decided."""
    from dataclasses import replace

    from cnnscope.app.parsing import bounded, parse_numbers, whole
    from cnnscope.data.mnist import load_mnist_for_model
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.optvis.starts import DEFAULT_FACTORS
    from cnnscope.runtime import pick_device

    settings = settings_from(args)
    scales = parse_numbers(args.scales, "noise scale", int)
    factors = parse_numbers(args.factors, "noise factor") if args.factors else list(DEFAULT_FACTORS[:1]) * len(scales)
    restarts = None if args.restarts is None else bounded("restarts", args.restarts, 1, MAX_STARTS)
    diverse = whole("diverse", args.diverse, 0)
    if diverse == 1:
        from cnnscope.errors import UserError

        raise UserError("--diverse needs at least 2 starts per target (or 0 for off)")
    args.examples = bool(args.examples or args.examples_spread)
    args.evaluate = bool(args.evaluate or args.examples)
    gallery = args.starts is not None or diverse > 0
    if gallery and args.race is None:  # a gallery keeps every start to the end
        settings = replace(settings, race=0)
    if args.starts is not None:
        starts = bounded("starts", args.starts, 2, MAX_STARTS)
        if restarts not in (None, 1, starts):
            from cnnscope.errors import UserError

            raise UserError(f"--starts {starts} and --restarts {restarts} disagree; give one of them")
        restarts = starts
    options = {"scales": scales, "factors": factors, "restarts": restarts,
               "precursor": bounded("precursor", args.precursor, 0, MAX_PRECURSOR),
               "precursor_steps": whole("precursor steps", args.precursor_steps, 1),
               "chunk_size": whole("chunk", args.chunk, 1) if args.chunk is not None else None, "strategy": strategy_from(args),
               "diverse": diverse, "diversity_weight": args.diversity_weight}
    columns = bounded("columns", args.columns, 1, MAX_COLUMNS) if args.columns is not None else None
    threads = whole("threads", args.threads, 1) if args.threads is not None else None
    device = pick_device(args.device)
    model, config = load_model(args.model, device=device)
    targets, stem = build_targets(args, model)
    paths = output_paths(args.out, stem)
    check_output_paths(paths, gif=bool(args.gif), gallery=gallery)
    mnist = load_mnist_for_model(config, args.data) if (args.evaluate or (args.start or "").startswith(("test:", "train:"))) else None
    start = load_start(args, model, mnist)
    options["size"] = None if args.size is None else bounded("size", args.size, 1, MAX_IMAGE_SIZE)
    return {"settings": settings, "options": options, "columns": columns, "threads": threads, "device": device,
            "model": model, "targets": targets, "paths": paths, "mnist": mnist, "start": start,
            "strip_index": _strip_choice(args.strip, targets), "gallery": gallery}


def compute(args, job: dict):
    """The OIPs of every target (and their dataset maxima with --evaluate)."""
    from cnnscope.data.mnist import to_tensor
    from cnnscope.optvis.oip import find_oips
    from cnnscope.optvis.quality import add_quality

    model, device = job["model"], job["device"]
    result = find_oips(model, job["targets"], job["settings"], seed=job["settings"].seed, start=job["start"],
                       device=device, progress=not args.quiet, **job["options"])
    if args.evaluate:
        job["test_images"] = to_tensor(job["mnist"].test_x)
        add_quality(result, model, job["test_images"], spread=bool(args.examples_spread))
    return result


def write_outputs(args, job: dict, result) -> None:
    """The zoo picture, the evolution strip (and GIF), and the JSON sidecar."""
    from cnnscope.figures.oip import (
        evolution_gif_frames,
        evolution_strip,
        gallery_picture,
        zoo_picture,
    )
    from cnnscope.files import save_gif, save_image, write_json
    from cnnscope.optvis.gallery import gallery_summary
    from cnnscope.optvis.oip import run_to_json, strongest

    paths, targets = job["paths"], job["targets"]
    if job["strip_index"] is None:
        job["strip_index"] = strongest(result)
    strip_index = job["strip_index"]
    scale = 8 if len(targets) <= 4 else 3
    examples = job.get("test_images") if args.examples else None
    save_image(paths["png"], zoo_picture(result, columns=job["columns"] or min(8, len(targets)), scale=scale,
                                         examples=examples))
    save_image(paths["strip"], evolution_strip(result, strip_index))
    files = {"picture": str(paths["png"]), "evolution": str(paths["strip"])}
    if args.gif:
        save_gif(paths["gif"], evolution_gif_frames(result, strip_index), duration_ms=400)
        files["gif"] = str(paths["gif"])
    body = run_to_json(result, job["model"])
    if job["gallery"]:
        job["summary"] = body["gallery"] = gallery_summary(result)
        save_image(paths["gallery"], gallery_picture(result, job["summary"]))
        files["gallery"] = str(paths["gallery"])
    body["model"] = str(args.model or "default")
    body["evolution_target"] = result.objectives[strip_index].name
    body["files"] = files
    write_json(paths["json"], body)


def print_summary(job: dict, result) -> None:
    """One line per target (up to 16), the coverage figures and the files written."""
    from cnnscope.optvis.oip import convergence, convergence_line, quality

    paths = job["paths"]
    if len(job["targets"]) <= 16:
        for i, objective in enumerate(result.objectives):
            line = f"{objective.name:>16}  final {float(result.final[i]):10.4g}  "
            line += f"{'reacted' if result.reacted[i] else 'NO REACTION'}  steps {int(result.steps_used[i])}"
            if result.dataset_max is not None:
                line += f"  dataset max {float(result.dataset_max[i]):.4g}"
            print(line)
    figures = quality(result)
    summary = f"reacted {figures['reacted']}/{figures['targets']}"
    if "live" in figures:
        summary += (f"; live {figures['live']}, live with OIP {figures['live_with_oip']}, "
                    f"beating the dataset max {figures['beats_dataset_max']}")
    print(summary)
    if result.report is not None:
        print("quality: " + ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in
                                      result.report["summary"].items() if name not in ("targets", "reacted", "live")))
    if job["gallery"]:
        summary = job["summary"]
        threshold = "n/a" if summary["threshold"] is None else f"{summary['threshold']:.2f}"
        print(f"starts: median similarity {summary['median_similarity']}; {summary['stable']} stable, "
              f"{summary['start_dependent']} start-dependent (threshold {threshold}: {summary['threshold_rule']})")
    strip = job["strip_index"]
    print(f"convergence of {result.objectives[strip].name} (step change/value at the snapshots): "
          f"{convergence_line(convergence(result, strip))}")
    gallery = f", {paths['gallery']}" if job["gallery"] else ""
    print(f"wrote {paths['png']}, {paths['strip']}{gallery}, {paths['json']}")
    if not figures["reacted"] and job["options"]["precursor"] == 0 and job["start"] is None:
        print("hint: no target reacted; try --precursor 32 --restarts 2")


def _strip_choice(text: str | None, targets) -> int | None:
    from cnnscope.errors import UserError

    if text is None:
        return None
    names = [t.name for t in targets]
    for i, target in enumerate(targets):
        short = str(target.targets[0].map) if target.targets else None
        if text in (target.name, short):
            return i
    raise UserError(f"--strip {text!r} is not one of the targets ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
