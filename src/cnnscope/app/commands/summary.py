"""`cnnscope summary`: the Keras-like table of the model's layers."""

from __future__ import annotations

from cnnscope.app.commands import add_model_option

NAME = "summary"
ORDER = 30
HELP = "print the model's layers, output shapes and parameter counts (like Keras's model.summary())"


def add_arguments(parser) -> None:
    add_model_option(parser)
    parser.add_argument("--untrained", action="store_true",
                        help="describe the default network without loading a checkpoint")


def run(args) -> int:
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.nn.model import CNN
    from cnnscope.nn.spec import default_spec

    if args.untrained:
        print(CNN(default_spec()).summary())
        return 0
    model, config = load_model(args.model)
    print(model.summary())
    metrics = config.get("metrics") or {}
    if "test_accuracy" in metrics:
        data = config.get("data") or {}
        print(f"Recipe: {config.get('recipe', '?')}, {config.get('epoch', '?')} epochs; test accuracy "
              f"{100 * metrics['test_accuracy']:.2f}% ({data.get('split', 'official')} split)")
    return 0
