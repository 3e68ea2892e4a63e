"""`cnnscope train`: train the seed CNN with a recipe and the articles' knobs."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from cnnscope.app.commands import add_data_option, add_device_option

NAME = "train"
CURVES = "curves.png"
ORDER = 10
HELP = "train the CNN on MNIST (recipes default|seed|best|fast, or your own settings)"
DESCRIPTION = (
    "Train the seed CNN (or any layout of the articles' list form: --conv, --pools, --dense or --spec) "
    "on MNIST. A recipe sets every knob; options override it. After every "
    "epoch the checkpoint (model.safetensors + config.json), curves.png, metrics.csv and the "
    "resume state are rewritten atomically in the output folder."
)

# option name -> TrainSettings field (options left at None keep the recipe's value)
OVERRIDES = {
    "epochs": "epochs", "batch_size": "batch_size", "optimizer": "optimizer", "lr": "lr",
    "momentum": "momentum", "schedule": "schedule", "decay_rate": "decay_rate",
    "decay_steps": "decay_steps", "l2": "l2", "l1": "l1", "penalize_conv": "penalize_conv",
    "augment": "augment", "shift": "shift", "ema": "ema", "label_smoothing": "label_smoothing",
    "seed": "seed", "split": "split", "split_seed": "split_seed", "init": "init",
    "train_images": "train_images", "test_images": "test_images", "threads": "threads",
}
LAYOUT_OPTIONS = ("conv", "pools", "dense", "normalize")  # they fix the network: resume and reset keep them


def add_arguments(parser) -> None:
    from cnnscope.training.settings import (
        AUGMENTATIONS,
        INITS,
        OPTIMIZERS,
        RECIPES,
        SCHEDULES,
        SPLITS,
    )

    parser.add_argument("--recipe", default="default", help=f"starting settings: {', '.join(RECIPES)} (default: default)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="checkpoint folder (default: $CNNSCOPE_HOME/models/default)")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (with --resume: the new total)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--optimizer", default=None, help=f"one of {', '.join(OPTIMIZERS)}")
    parser.add_argument("--lr", type=float, default=None, help="initial (peak for onecycle) learning rate")
    parser.add_argument("--momentum", type=float, default=None, help="RMSprop/SGD momentum; beta1 of adam, nadam, adamax")
    parser.add_argument("--schedule", default=None,
                        help=f"one of {', '.join(SCHEDULES)}; power = lr/(1+rate*step/steps) per optimizer step (the articles' powerSched)")
    parser.add_argument("--decay-rate", type=float, default=None, help="power: rate (default 1e-3); exponential: factor per decay period (default 0.9)")
    parser.add_argument("--decay-steps", type=int, default=None, help="power: default 1; exponential: default one epoch")
    parser.add_argument("--l2", type=float, default=None, help="L2 weight on dense kernels (Keras l2: loss += l2*sum(w^2))")
    parser.add_argument("--l1", type=float, default=None, help="L1 weight on dense kernels")
    parser.add_argument("--penalize-conv", action="store_true", default=None, help="apply --l2/--l1 to conv kernels too")
    parser.add_argument("--augment", default=None, help=f"one of {', '.join(AUGMENTATIONS)} (default none; best: affine)")
    parser.add_argument("--shift", type=int, default=None, help="maximum augmentation shift in pixels (default 2)")
    parser.add_argument("--ema", type=float, default=None, help="moving average of the weights, e.g. 0.999 (0 = off)")
    parser.add_argument("--label-smoothing", type=float, default=None)
    parser.add_argument("--init", default=None, help=f"weight initialisation: {', '.join(INITS)} (default keras)")
    parser.add_argument("--seed", type=int, default=None, help="seed for weights, shuffling and augmentation (default 0)")
    parser.add_argument("--split", default=None, help=f"data split: {', '.join(SPLITS)} (default official)")
    parser.add_argument("--split-seed", type=int, default=None, help="shuffle seed of the 'seed' split (default 0)")
    parser.add_argument("--train-images", type=int, default=None, metavar="N",
                        help="use only the first N training images (quick experiments)")
    parser.add_argument("--test-images", type=int, default=None, metavar="N",
                        help="evaluate each epoch on the first N test images only (quick experiments)")
    parser.add_argument("--conv", default=None, metavar="LIST",
                        help="conv layers as FILTERS:KERNEL[:ACTIVATION], e.g. 32:3:relu,64:3:relu,128:3:relu (the "
                             "default; activations relu, sigmoid, elu, tanh)")
    parser.add_argument("--pools", default=None, metavar="LIST",
                        help="max-pool sizes after the first conv layers, e.g. 2,2 or 2x2, or none (default: a 2x2 "
                             "pool after every conv layer but the last)")
    parser.add_argument("--dense", default=None, metavar="LIST",
                        help="dense layers as UNITS[:ACTIVATION], e.g. 100:relu,10:softmax (the default; hidden relu, "
                             "sigmoid, tanh; output softmax or sigmoid, 10 units)")
    parser.add_argument("--spec", default=None, metavar="FILE.json",
                        help='the layout as a JSON file: {"conv": [[32, [3, 3], "relu"], ...], "pools": [[2, 2], ...], '
                             '"dense": [[100, "relu"], [10, "softmax"]]} (instead of --conv/--pools/--dense)')
    parser.add_argument("--normalize", default=None, metavar="MODE",
                        help="input standardisation: global (default: the training images' mean and std), per-pixel "
                             "(every pixel's mean and std, scikit-learn's StandardScaler, as the articles), "
                             "per-image, none")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in the output folder")
    parser.add_argument("--reset", action="store_true", help="restart from the initial weights saved in the output folder")
    parser.add_argument("--force", action="store_true",
                        help="start a new run in a folder that holds one (its files are kept until the new run has "
                             "saved its first epoch)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the cores not busy with other work when the command starts)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines only)")
    add_data_option(parser)
    add_device_option(parser)


def settings_from_args(args):
    """(validated TrainSettings, the fields the options changed) for the train options."""
    from cnnscope.errors import UserError
    from cnnscope.training.settings import recipe_settings

    settings = recipe_settings(args.recipe)
    changes = {field: getattr(args, option) for option, field in OVERRIDES.items() if getattr(args, option) is not None}
    changes.update(layout_from_args(args))
    if changes:
        settings = replace(settings, **changes)
    try:
        return settings.validate(), changes
    except UserError as exc:
        if args.spec and exc.parameter in ("conv", "pools", "dense"):
            raise UserError(f"layout file {args.spec}: {exc}", "spec") from None
        raise


def layout_from_args(args) -> dict:
    """The layout fields given by --conv/--pools/--dense, --spec and --normalize."""
    from cnnscope.app.parsing import (
        parse_conv_layers,
        parse_dense_layers,
        parse_pools,
        read_layout_file,
    )
    from cnnscope.errors import UserError

    given = [f"--{name}" for name in ("conv", "pools", "dense") if getattr(args, name) is not None]
    if args.spec and given:
        raise UserError(f"give the layout either as --spec or as --conv/--pools/--dense, not both (got --spec and "
                        f"{', '.join(given)})", "spec")
    layout = read_layout_file(args.spec) if args.spec else {}
    for name, parse in (("conv", parse_conv_layers), ("pools", parse_pools), ("dense", parse_dense_layers)):
        if getattr(args, name) is not None:
            layout[name] = parse(getattr(args, name))
    if args.normalize is not None:
        layout["normalize"] = args.normalize.strip().lower().replace("-", "_")
    return layout


def run(args) -> int:
    from cnnscope.errors import UserError
    from cnnscope.files import check_output_folder
    from cnnscope.nn.checkpoint import default_model_dir
    from cnnscope.runtime import pick_device
    from cnnscope.training.runs import run_training

    out = Path(args.out).expanduser() if args.out else default_model_dir()
    device = pick_device(args.device)
    settings, changes = settings_from_args(args)
    if args.data is not None and not Path(args.data).expanduser().exists():
        raise UserError(f"data path {args.data} does not exist (expected mnist.npz or a folder of IDX files)")
    check_output_folder(out)  # a full disk or a read-only folder fails now, not after the first epoch
    if args.resume:
        ignored = sorted(set(changes) - {"epochs", *LAYOUT_OPTIONS})
        if ignored or args.recipe != "default":
            names = ", ".join("--" + name.replace("_", "-") for name in ignored) or "--recipe"
            raise UserError(f"--resume continues with the stored settings; only --epochs may change (got {names})")
        state = run_training(settings, out, data=args.data, resume=True, reset=args.reset, epochs=changes.get("epochs"),
                             device=device, progress=not args.no_progress, callbacks=[CurvesWriter(out)])
    else:
        state = run_training(settings, out, data=args.data, reset=args.reset, device=device, force=args.force,
                             progress=not args.no_progress, callbacks=[CurvesWriter(out)])
    if state.history:
        last = state.history[-1]
        print(f"done: test accuracy {100 * last.test_accuracy:.2f}% after {state.epoch} epochs, "
              f"{state.train_seconds:.0f} s of training; checkpoint in {out}")
    return 0


class CurvesWriter:
    """An epoch callback for `train` (the hooks of `cnnscope.training.loop.EpochCallback`) that
    redraws curves.png in a checkpoint folder after every epoch."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def on_begin(self, state) -> None:
        pass

    def on_epoch_end(self, state, record) -> None:
        from cnnscope.figures.training import curves_figure
        from cnnscope.files import save_figure

        save_figure(self.folder / CURVES, curves_figure(state.history, state.settings))

    def on_end(self, state) -> None:
        pass
