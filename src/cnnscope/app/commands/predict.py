"""`cnnscope predict`: the ten class probabilities for a dataset image or an image file."""

from __future__ import annotations

import json
from pathlib import Path

from cnnscope.app.commands import add_common_options

NAME = "predict"
ORDER = 20
HELP = "class probabilities for a test/train image (--index) or an image file (--image)"
DESCRIPTION = (
    "Print the ten class probabilities as a small bar chart and the predicted class. An image "
    "file (PNG/JPG, any size) is converted the MNIST way first: grayscale, inverted if the "
    "background is light, cropped to the ink, fitted into 20x20, centred by mass in 28x28."
)
BAR_WIDTH = 40


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", type=int, help="index of an image in the model's data split")
    source.add_argument("--image", metavar="FILE", help="an image file of a digit (PNG, JPG, ...)")
    parser.add_argument("--set", default="test", help="image set for --index: test (default) or train")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the bar chart")
    parser.add_argument("--save-input", metavar="PNG", default=None,
                        help="also save the 28x28 image the network saw (useful with --image)")
    add_common_options(parser)


def run(args) -> int:
    import numpy as np

    from cnnscope.analysis.evaluation import predict_probabilities
    from cnnscope.data.images import load_image_file, mnist_style
    from cnnscope.data.mnist import check_index, load_mnist_for_model, to_tensor
    from cnnscope.errors import UserError, check_choice
    from cnnscope.files import check_output_file, save_image, write_json, written_together
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.runtime import pick_device

    check_choice("image set", args.set, ("test", "train"))
    save_input = Path(args.save_input).expanduser() if args.save_input else None
    if save_input is not None:
        if save_input.suffix.lower() != ".png":
            raise UserError(f"--save-input must name a .png file, got {args.save_input}")
        check_output_file(save_input)
        check_output_file(save_input.with_suffix(".json"))
    device = pick_device(args.device)
    if args.image is not None:
        image = mnist_style(load_image_file(args.image))  # validate the image before the model
        model, config = load_model(args.model, device=device)
        source = {"image": str(args.image)}
        true_label = None
    else:
        model, config = load_model(args.model, device=device)
        mnist = load_mnist_for_model(config, args.data)
        index = check_index(mnist, args.set, args.index)
        images, labels = mnist.images(args.set)
        image, true_label = images[index], int(labels[index])
        source = {"set": args.set, "index": index, "split": mnist.split, "split_seed": mnist.seed}
    probabilities = predict_probabilities(model, to_tensor(image[None]))[0]
    predicted = int(np.argmax(probabilities))
    result = {**source, "true": true_label, "predicted": predicted,
              "probability": float(probabilities[predicted]),
              "probabilities": [round(float(p), 6) for p in probabilities]}
    if save_input is not None:
        with written_together():
            save_image(save_input, image)
            write_json(save_input.with_suffix(".json"), {**result, "model": str(args.model or "default")})
        result["input_png"] = str(save_input)
    if args.json:
        print(json.dumps(result))
        return 0
    print(describe_source(result))
    print(bar_chart(probabilities, true_label))
    verdict = "" if true_label is None else ("  (correct)" if predicted == true_label else f"  (WRONG: true {true_label})")
    print(f"prediction: {predicted} ({100 * probabilities[predicted]:.2f}%){verdict}")
    return 0


def describe_source(result: dict) -> str:
    if "image" in result:
        return f"image file {result['image']} (converted to 28x28 the MNIST way)"
    return f"{result['set']} image #{result['index']} ({result['split']} split), true class {result['true']}"


def bar_chart(probabilities, true_label: int | None = None, width: int = BAR_WIDTH) -> str:
    """One line per class: class, probability and a bar of '#' proportional to it."""
    best = int(max(range(len(probabilities)), key=lambda k: probabilities[k]))
    lines = []
    for k, p in enumerate(probabilities):
        bar = "#" * int(round(float(p) * width))
        marks = (" <- predicted" if k == best else "") + (" (true)" if k == true_label else "")
        lines.append(f"  {k}  {100 * float(p):6.2f}% |{bar}{marks}")
    return "\n".join(lines)
