"""`cnnscope evaluate`: accuracy, per-class accuracy, confusion matrix and confident mistakes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cnnscope.app.commands import add_common_options

NAME = "evaluate"
ORDER = 21
HELP = "accuracy, per-class accuracy, confusion matrix PNG and the most confident mistakes"


def add_arguments(parser) -> None:
    add_common_options(parser)
    parser.add_argument("--set", default="test", help="image set: test (default) or train")
    parser.add_argument("--out", default="out/evaluation", metavar="DIR",
                        help="folder for confusion.png, mistakes.png, evaluation.json (default: out/evaluation)")
    parser.add_argument("--mistakes", type=int, default=24, help="how many confident mistakes to show (default 24)")
    parser.add_argument("--json", action="store_true", help="print the evaluation as JSON")


def run(args) -> int:
    from cnnscope.analysis.evaluation import evaluate
    from cnnscope.data.mnist import load_mnist_for_model
    from cnnscope.errors import UserError, check_choice
    from cnnscope.files import check_output_file, check_output_folder, written_together
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.runtime import pick_device

    check_choice("image set", args.set, ("test", "train"))
    if args.mistakes < 0 or args.mistakes > 500:
        raise UserError(f"--mistakes must be between 0 and 500, got {args.mistakes}")
    out = check_output_folder(Path(args.out).expanduser())
    for name in ("confusion.png", "mistakes.png", "evaluation.json"):
        check_output_file(out / name)
    model, config = load_model(args.model, device=pick_device(args.device))
    mnist = load_mnist_for_model(config, args.data)
    images, labels = mnist.images(args.set)
    evaluation = evaluate(model, images, labels, args.set)
    extra = {"model": str(args.model or "default"), "split": mnist.split, "split_seed": mnist.seed}
    with written_together():
        paths = save_evaluation(evaluation, images, out, args.mistakes, extra)
    if args.json:
        print(json.dumps({**extra, **evaluation.to_dict(args.mistakes)}))
    else:
        print(format_report(evaluation))
        print(f"wrote {paths['confusion']}, {paths['mistakes']}, {paths['json']}")
    return 0


def save_evaluation(evaluation, images, folder: str | os.PathLike, mistakes: int = 24,
                    extra: dict | None = None) -> dict[str, Path]:
    """Write confusion.png, mistakes.png and evaluation.json into `folder`.

    Args:
        evaluation: the `Evaluation` to show.
        images: the evaluated uint8 images (N x 28 x 28), for the mistakes picture.
        folder: where to write.
        mistakes: how many confident mistakes to show and list.
        extra: entries put first in the JSON (model, split, ...).

    Returns:
        The written paths by name: "confusion", "mistakes", "json".
    """
    from cnnscope.figures.evaluation import confusion_figure, mistakes_figure
    from cnnscope.files import save_figure, write_json

    folder = Path(folder)
    paths = {
        "confusion": save_figure(folder / "confusion.png", confusion_figure(evaluation)),
        "mistakes": save_figure(folder / "mistakes.png", mistakes_figure(evaluation, images, mistakes)),
    }
    body = {**(extra or {}), **evaluation.to_dict(mistakes),
            "files": {name: path.name for name, path in paths.items()}}
    paths["json"] = write_json(folder / "evaluation.json", body)
    return paths


def format_report(evaluation, mistakes: int = 10) -> str:
    """A plain-text summary of an `Evaluation` for the terminal: accuracy, per class, confusions, mistakes."""
    import numpy as np

    per_class = evaluation.per_class_accuracy()
    matrix = evaluation.confusion()
    lines = [
        f"{evaluation.set_name} set: accuracy {100 * evaluation.accuracy:.2f}% "
        f"({evaluation.errors} errors of {len(evaluation.labels)})",
        "per class: " + "  ".join(f"{k}: {100 * v:.2f}%" for k, v in enumerate(per_class)),
    ]
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    pairs = sorted(((int(off[t, p]), t, p) for t in range(len(off)) for p in range(len(off)) if off[t, p]), reverse=True)
    if pairs:
        lines.append("most frequent confusions: " + ", ".join(f"{t}\u2192{p} x{c}" for c, t, p in pairs[:5]))
    top = evaluation.most_confident_mistakes(mistakes)
    if top:
        lines.append("most confident mistakes: " + ", ".join(
            f"#{m.index} ({m.true}\u2192{m.predicted}, {100 * m.probability:.1f}%)" for m in top))
    return "\n".join(lines)
