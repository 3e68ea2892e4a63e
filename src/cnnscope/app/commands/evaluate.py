"""`cnnscope evaluate`: accuracy, per-class accuracy, confusion matrix and confident mistakes."""

from __future__ import annotations

import json
from pathlib import Path

from cnnscope.app.commands import add_data_option, add_device_option, add_model_option

NAME = "evaluate"
ORDER = 21
HELP = "accuracy, per-class accuracy, confusion matrix PNG and the most confident mistakes"


def add_arguments(parser) -> None:
    add_model_option(parser)
    add_data_option(parser)
    add_device_option(parser)
    parser.add_argument("--set", default="test", help="image set: test (default) or train")
    parser.add_argument("--out", default="out/evaluation", metavar="DIR",
                        help="folder for confusion.png, mistakes.png, evaluation.json (default: out/evaluation)")
    parser.add_argument("--mistakes", type=int, default=24, help="how many confident mistakes to show (default 24)")
    parser.add_argument("--json", action="store_true", help="print the evaluation as JSON")


def run(args) -> int:
    from cnnscope.analysis.evaluation import evaluate, format_report, save_evaluation
    from cnnscope.data.mnist import load_mnist_for_model
    from cnnscope.errors import UserError, check_choice
    from cnnscope.files import check_output_folder
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.runtime import pick_device

    check_choice("image set", args.set, ("test", "train"))
    if args.mistakes < 0 or args.mistakes > 500:
        raise UserError(f"--mistakes must be between 0 and 500, got {args.mistakes}")
    out = check_output_folder(Path(args.out).expanduser())
    model, config = load_model(args.model, device=pick_device(args.device))
    mnist = load_mnist_for_model(config, args.data)
    images, labels = mnist.images(args.set)
    evaluation = evaluate(model, images, labels, args.set)
    extra = {"model": str(args.model or "default"), "split": mnist.split, "split_seed": mnist.seed}
    paths = save_evaluation(evaluation, images, out, args.mistakes, extra)
    if args.json:
        print(json.dumps({**extra, **evaluation.to_dict(args.mistakes)}))
    else:
        print(format_report(evaluation))
        print(f"wrote {paths['confusion']}, {paths['mistakes']}, {paths['json']}")
    return 0
