"""`cnnscope import-keras`: turn a Keras Sequential CNN (.h5 / .keras) into a cnnscope checkpoint."""

from __future__ import annotations

from cnnscope.app.commands import add_data_option, add_import_options, import_folder, save_imported

NAME = "import-keras"
ORDER = 60
HELP = "import a Keras Sequential CNN (.h5 or .keras) as a cnnscope model (no TensorFlow needed)"
DESCRIPTION = (
    "Read a Keras 2 .h5 or Keras 3 .keras file holding a Sequential CNN of Conv2D, MaxPooling2D, "
    "Flatten, Dense and Dropout layers and write a cnnscope checkpoint folder that every other "
    "command can use with --model DIR. Layer names are kept."
)


def add_arguments(parser) -> None:
    add_import_options(parser, "Keras model file written by model.save('cnn.h5') or model.save('cnn.keras')")
    parser.add_argument("--normalize", default="none", metavar="MODE",
                        help="how images in [0, 1] were standardised before the Keras model saw them: none (default), "
                             "global (MNIST mean 0.1307, std 0.3081), per_image (each image to mean 0, std 1), "
                             "per-pixel (the articles' StandardScaler: every pixel's mean and std over all 70000 "
                             "MNIST images on the 0..255 scale, as their load_Mnist fitted it), "
                             "or MEAN,STD on the [0, 1] scale (pixels 0..255 fed raw: 0,0.00392156862745098)")
    add_data_option(parser)


def run(args) -> int:
    from cnnscope.app.parsing import parse_normalization
    from cnnscope.nn.keras_import import import_keras

    normalization = parse_normalization(args.normalize)
    out = import_folder(args.out, args.force)
    pixels = articles_pixel_statistics(args.data) if normalization.mode == "per_pixel" else None
    model, source = import_keras(args.file, normalization, pixels)  # everything is checked before anything is written

    save_imported(model, out, source={"kind": "keras", **source}, normalize=args.normalize)
    print(model.summary())
    print(f"imported {source['file']} ({source['format']}, Keras {source['keras_version']}) -> {out}")
    if normalization.mode == "none":
        print("input normalisation: none; if the Keras model saw standardised images, import again with "
              "--normalize global, per_image, per-pixel or MEAN,STD")
    return 0


def articles_pixel_statistics(data):
    """The per-pixel StandardScaler of the articles' `load_Mnist`: fitted on all 70000 MNIST images
    (training and test merged, before their shuffle and split) on the raw 0..255 scale."""
    import numpy as np

    from cnnscope.data.mnist import load_mnist
    from cnnscope.nn.model import per_pixel_statistics

    mnist = load_mnist(data)
    return per_pixel_statistics(np.concatenate([mnist.train_x, mnist.test_x]), fitted_on="raw")
