"""`cnnscope dream`: DeepDream with the MNIST network on a photo."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cnnscope.app.commands import add_device_option, add_model_option, add_parametrization_options
from cnnscope.errors import UserError

NAME = "dream"
ORDER = 45
HELP = "let maps or layers of the MNIST network dream on a photo (DeepDream)"
DESCRIPTION = (
    "DeepDream with the MNIST network. --mode downscale (default) is the articles' single-map "
    "dream: the photo squeezed to 28x28, ascended, upscaled, the lost detail re-added, 4 rounds, "
    "then the value distribution adjusted. --mode octaves dreams at several sizes with detail "
    "carried between them; --mode native at full resolution (optionally in tiles). Colour photos "
    "are dreamed in their luminance and keep their colours. Writes the result PNG, a panel PNG, "
    "a JSON sidecar (all parameters, objective value per round/octave, time) and optionally a GIF."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnscope.data.photos import DEFAULT_MAX_SIDE, SAMPLES
    from cnnscope.optvis.dream import DEFAULT_MAP, MODE_DEFAULTS, MODES

    def default(field: str) -> str:
        return ", ".join(f"{mode} {MODE_DEFAULTS[mode][field]:g}" for mode in MODES)

    add_model_option(parser)
    add_device_option(parser)
    parser.add_argument("image", nargs="?", default=None, metavar="IMAGE",
                        help="photo file (anything Pillow reads); or use --sample")
    parser.add_argument("--sample", choices=SAMPLES, default=None,
                        help="a photo scikit-learn ships instead of IMAGE: flower or china")
    parser.add_argument("--mode", choices=MODES, default="downscale",
                        help="downscale (the articles' 28x28 loop, default), octaves or native")
    objective = parser.add_argument_group("objective (one kind; default --map " + DEFAULT_MAP
                                          + ", or map 0 of the deepest conv layer of another layout)")
    objective.add_argument("--map", action="append", default=[], metavar="LAYER:MAP[,MAP]",
                           help="map(s) to dream of, e.g. Conv2D_3:56; repeat or comma-separate: values are summed")
    objective.add_argument("--layer", default=None, metavar="LAYER", help="a whole layer (mean of all maps)")
    objective.add_argument("--layers", default=None, metavar="MIX",
                           help="weighted layer mix, e.g. Conv2D_2:1.0,Conv2D_3:2.0")
    knobs = parser.add_argument_group("ascent")
    knobs.add_argument("--steps", type=int, default=None, metavar="N",
                       help=f"ascent steps per round/octave (default: {default('steps')})")
    knobs.add_argument("--rounds", type=int, default=None, metavar="N",
                       help="repetitions in downscale and native mode (default 4)")
    knobs.add_argument("--epsilon", type=float, default=None, metavar="E",
                       help=f"step size of the normalised gradient (default: {default('epsilon')})")
    knobs.add_argument("--jitter", type=int, default=None, metavar="PX",
                       help=f"random roll of up to PX network pixels each step, undone after (default: {default('jitter')})")
    knobs.add_argument("--width", type=float, default=None, metavar="W",
                       help="final value distribution: standard deviation around mid-grey as a fraction of the "
                            f"grey range, the articles' adjustment; 0 keeps the values (default: {default('width')})")
    knobs.add_argument("--octaves", type=int, default=3, metavar="N", help="octaves mode: number of sizes (default 3)")
    knobs.add_argument("--octave-scale", type=float, default=1.4, metavar="S",
                       help="octaves mode: size ratio of neighbouring octaves, > 1 (default 1.4)")
    knobs.add_argument("--px", type=float, default=4.0, metavar="P",
                       help="octaves mode: photo pixels per network pixel at the finest octave, >= 1 (default 4)")
    knobs.add_argument("--tile", type=int, default=0, metavar="T",
                       help="native mode: tile side, a multiple of 28 (default 0: whole photo; "
                            "large photos are tiled anyway)")
    knobs.add_argument("--seed", type=int, default=0, help="seed for jitter and tile offsets (default 0)")
    add_parametrization_options(knobs)
    out = parser.add_argument_group("input and output")
    out.add_argument("--gray", action="store_true", help="dream and save in gray even for a colour photo")
    out.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, metavar="PX",
                     help=f"photos with a longer side are resized down to it, with a note (default {DEFAULT_MAX_SIDE}); "
                          "photos over 40 megapixels or 16384 pixels per side are refused")
    out.add_argument("--gif", action="store_true", help="also write a GIF of the photo after each round/octave")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    out.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch CPU threads (default 1: dream images are small, and on a busy machine more "
                          "threads are slower; 0 = torch's default)")
    out.add_argument("--out", default="out/dream", metavar="PATH",
                     help="folder (default out/dream), or the result's .png file; the panel, JSON and GIF go beside it")


def output_paths(out: Path, tag: str, gif: bool) -> dict[str, Path]:
    """result / panel / json (/ gif) paths: inside folder `out`, or next to `out` if it is a .png."""
    if out.suffix.lower() == ".png":
        result = out
    elif out.suffix:
        raise UserError(f"--out {out} must be a folder or a .png file")
    elif out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    else:
        result = out / f"{tag}.png"
    paths = {"result": result, "panel": result.with_name(f"{result.stem}_panel.png"),
             "json": result.with_suffix(".json")}
    if gif:
        paths["gif"] = result.with_name(f"{result.stem}_rounds.gif")
    return paths


def file_tag(source: str, objective: str, mode: str) -> str:
    text = f"{source}_{objective}_{mode}"
    tag = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    while "--" in tag:
        tag = tag.replace("--", "-")
    return tag.strip("-_")[:120]


def settings_from_args(args):
    from cnnscope.optvis.dream import DreamSettings

    for name in ("steps", "rounds", "octaves"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be >= 1, got {value}")
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0 (0 = torch's default), got {args.threads}")
    if args.max_side < 28:
        raise UserError(f"--max-side must be at least 28 pixels, got {args.max_side}")
    return DreamSettings(mode=args.mode, steps=args.steps, rounds=args.rounds, epsilon=args.epsilon,
                         jitter=args.jitter, width=args.width, octaves=args.octaves,
                         octave_scale=args.octave_scale, px=args.px, tile=args.tile, seed=args.seed,
                         param=args.param, valid_pixels=bool(args.valid_pixels)).resolved()


def run(args) -> int:
    from cnnscope.files import written_together
    from cnnscope.optvis.dream import dream

    started = time.perf_counter()
    job = prepare(args)  # everything is checked before anything is written
    if job["photo"].resize_note:
        print(f"note: {job['photo'].resize_note}")
    progress = not args.quiet and sys.stderr.isatty()
    result = dream(job["model"], job["photo"], job["objective"], job["settings"], progress=progress,
                   on_stage=print_stage, threads=args.threads or None)
    for note in result.notes:
        print(f"note: {note}")
    with written_together():
        write_outputs(args, job, result, started)
    print(f"dream took {result.seconds:.2f} s (total {time.perf_counter() - started:.2f} s)")
    return 0


def prepare(args) -> dict:
    """Options, model, objective and photo checked; the output paths decided."""
    from cnnscope.app.parsing import objective_from_text
    from cnnscope.data.photos import load_photo
    from cnnscope.files import check_output_file
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.optvis.dream import check_normalization, check_objective, check_sizes, default_map
    from cnnscope.runtime import pick_device

    if (args.image is None) == (args.sample is None):
        raise UserError("give a photo: IMAGE or --sample flower|china (one of them)")
    settings = settings_from_args(args)
    device = pick_device(args.device)
    model, _ = load_model(args.model, device=device)
    objective = objective_from_text(args.map, args.layer, args.layers, default_map=default_map(model))
    check_objective(model, objective, settings.mode)
    check_normalization(model, settings.mode)
    photo = load_photo(args.image, sample=args.sample, max_side=args.max_side, color=not args.gray)
    check_sizes(settings, *photo.size)
    source = args.sample or Path(args.image).stem
    paths = output_paths(Path(args.out).expanduser(), file_tag(source, objective.name, settings.mode), args.gif)
    for path in paths.values():
        check_output_file(path)
    return {"settings": settings, "objective": objective, "device": device, "model": model, "photo": photo,
            "paths": paths}


def print_stage(stage) -> None:
    tiles = f", {stage.tiles} tiles" if stage.tiles > 1 else ""
    print(f"{stage.name} ({stage.size[1]}x{stage.size[0]}{tiles}): objective "
          f"{stage.value_start:.4g} -> {stage.value_end:.4g} ({stage.seconds:.2f} s)")


def write_outputs(args, job: dict, result, started: float) -> None:
    """The dreamed photo, the panel, the GIF (with --gif) and the JSON sidecar."""
    from cnnscope import __version__
    from cnnscope.figures.dream import gif_frames, render_panel
    from cnnscope.files import save_gif, save_image, write_json

    photo, paths = job["photo"], job["paths"]
    color = photo.is_color
    image = photo.compose(result.luminance, color=color)
    panel = render_panel(photo, result, color=color)
    frames = gif_frames(photo, result, color=color) if args.gif else None
    save_image(paths["result"], image)
    save_image(paths["panel"], panel)
    if frames is not None:
        save_gif(paths["gif"], frames, duration_ms=600)
    write_json(paths["json"], {
        "command": "dream",
        "cnnscope": __version__,
        "model": str(args.model or "default"),
        "device": str(job["device"]),
        "input": photo.source,
        "photo_size": list(photo.size),
        "original_size": list(photo.original_size),
        "resize_note": photo.resize_note,
        "color": color,
        **result.summary(),
        "total_seconds": round(time.perf_counter() - started, 3),
        "outputs": {name: path.name for name, path in paths.items() if name != "json"},
    })
    listed = ", ".join(str(paths[name]) for name in ("result", "panel", "gif", "json") if name in paths)
    print(f"wrote {listed}")
