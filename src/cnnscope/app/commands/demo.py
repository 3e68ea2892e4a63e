"""`cnnscope demo`: the main job — train or reuse the default model, then write the HTML report."""

from __future__ import annotations

import time
from pathlib import Path

from cnnscope.app.commands import add_common_options

NAME = "demo"
ORDER = 0
HELP = "train (or reuse) the default model and write an HTML report of everything"


def add_arguments(parser) -> None:
    add_common_options(parser)
    parser.add_argument("--out", default="reports/demo", metavar="DIR",
                        help="report folder (default: reports/demo); index.html is written last")
    parser.add_argument("--quick", action="store_true",
                        help="smaller workloads in every section (same code paths); for a fast look")
    parser.add_argument("--seed", type=int, default=0, help="seed for every randomised picture (default 0)")
    parser.add_argument("--compare", default=None, metavar="DIR",
                        help="another checkpoint: adds a section comparing the two models (CKA, matched maps)")


def run(args) -> int:
    from cnnscope.app.commands.train import CurvesWriter
    from cnnscope.app.report import ReportContext, build_report
    from cnnscope.data.mnist import load_mnist_for_model
    from cnnscope.files import check_output_folder
    from cnnscope.nn.checkpoint import default_model_dir, load_model
    from cnnscope.runtime import pick_device
    from cnnscope.training.runs import ensure_default_model

    started = time.perf_counter()
    out = check_output_folder(Path(args.out).expanduser())  # before any training or picture
    device = pick_device(args.device)
    if args.compare:
        from cnnscope.nn.checkpoint import read_config

        read_config(Path(args.compare).expanduser())  # a bad folder fails now, not after the report's work
    if args.model:
        model_dir = Path(args.model)
    else:
        model_dir = ensure_default_model(log=print, data=args.data, device=device,
                                         callbacks=[CurvesWriter(default_model_dir())])
    model, config = load_model(model_dir, device=device)
    mnist = load_mnist_for_model(config, args.data)
    print(f"writing report to {out} ...")
    ctx = ReportContext(model=model, config=config, mnist=mnist, model_dir=model_dir, folder=out,
                        device=device, seed=args.seed, quick=args.quick,
                        compare=Path(args.compare).expanduser() if args.compare else None)
    index = build_report(ctx)
    print(f"report: {index.resolve()}  ({time.perf_counter() - started:.0f} s)")
    return 0
