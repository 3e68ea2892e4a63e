"""Small helpers shared by several test modules (import as `from helpers import ...`)."""

from __future__ import annotations

import io
import struct
import zlib

import torch
from PIL import Image

from cnnscope.training.settings import TrainSettings

# a training run of seconds: 3000 real training images, 1000 test images, two epochs
TINY_TRAINING = TrainSettings(recipe="custom", epochs=2, batch_size=64, optimizer="adam", lr=2e-3,
                              schedule="onecycle", train_images=3000, test_images=1000)
QUIET = {"progress": False, "log": lambda line: None}  # no progress bar, no log lines


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is a 1 x 1 image)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:20], data[20:24] = struct.pack(">I", width), struct.pack(">I", height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def flat_weights(model: torch.nn.Module) -> torch.Tensor:
    """All parameters of `model` in one flat tensor (to compare two models bit for bit)."""
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def permute_conv2d_3(model: torch.nn.Module, permutation: torch.Tensor) -> torch.nn.Module:
    """Reorder the default layout's Conv2D_3 maps in place by `permutation` (new map u = old map
    permutation[u]) and Dense_1's input columns to match (Max_Pool/Flatten keep the map order),
    so the outputs are unchanged. Returns the model."""
    conv, dense = model.body.Conv2D_3, model.body.Dense_1
    height, width = model.output_shape("Conv2D_3")[1:]
    with torch.no_grad():
        conv.weight.copy_(conv.weight[permutation])
        conv.bias.copy_(conv.bias[permutation])
        columns = dense.weight.reshape(dense.out_features, -1, height * width)
        dense.weight.copy_(columns[:, permutation].reshape(dense.out_features, -1))
    return model


def run_cli(argv, capsys):
    """`cnnscope ARGV` in this process: (exit code, stdout, stderr); argparse's exits included."""
    from cnnscope.app.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, message):
    """Exit code 2 and exactly one line on stderr, naming `message`, without a traceback."""
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cnnscope") and "Traceback" not in err
    assert message in err, err


class Recorder:
    """A forward hook object holding a non-leaf tensor, as activation recorders do."""

    def __init__(self):
        self.held = torch.ones(1, requires_grad=True) * 2
        self.calls = []

    def __call__(self, module, args, output):
        self.calls.append(output.shape)
