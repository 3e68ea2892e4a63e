"""`cnnscope import-onnx`: turn a sequential CNN in an ONNX file into a cnnscope checkpoint."""

from __future__ import annotations

import importlib.util

from cnnscope.app.commands import add_import_options, import_folder, save_imported

NAME = "import-onnx"
ORDER = 61
HELP = "import a sequential CNN from an ONNX file (e.g. torch.onnx.export) as a cnnscope model"
DESCRIPTION = (
    "Read an ONNX file (with the onnx package only; nothing in it is run) holding a chain of Conv, "
    "Relu/Sigmoid/Tanh/Elu, MaxPool, Flatten/Reshape, Gemm or MatMul+Add, Dropout and a final Softmax "
    "on a 1-channel square image, and write a cnnscope checkpoint folder that every other command can "
    "use with --model DIR. A leading Sub/Div by constants becomes the model's input normalisation."
)


def add_arguments(parser) -> None:
    add_import_options(parser, "ONNX model file, for example written by torch.onnx.export")
    parser.add_argument("--normalize", default="none", metavar="MODE",
                        help="how images in [0, 1] were standardised before the graph saw them: none (default; "
                             "also when the graph standardises them itself with Sub/Div), global (MNIST mean "
                             "0.1307, std 0.3081), per_image (each image to mean 0, std 1), or MEAN,STD on the "
                             "[0, 1] scale")


def run(args) -> int:
    from cnnscope.app.parsing import parse_normalization
    from cnnscope.errors import UserError
    from cnnscope.nn.onnx_import import import_onnx

    normalization = parse_normalization(args.normalize)
    out = import_folder(args.out, args.force)
    if importlib.util.find_spec("onnx") is None:
        raise UserError("import-onnx needs the onnx package: pip install 'cnnscope[onnx]'")
    model, source = import_onnx(args.file, normalization)  # everything is checked before anything is written

    norm = model.spec.normalization
    normalize = f"{norm.mean},{norm.std}" if norm.mode == "global" else norm.mode
    save_imported(model, out, source={"kind": "onnx", **source}, normalize=normalize)
    print(model.summary())
    print(f"imported {source['file']} (ONNX opset {source['opset']}, {source['producer']}) -> {out}")
    if source["outputs"] == "probabilities":
        print("the graph ends in Softmax: its outputs are the model's probabilities (the checkpoint's last layer gives logits)")
    if norm.mode == "none":
        print("input normalisation: none; if the graph saw standardised images, import again with "
              "--normalize global, per_image or MEAN,STD")
    return 0
