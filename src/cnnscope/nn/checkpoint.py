"""Checkpoints: `model.safetensors` (weights) + `config.json` (spec, data split, recipe, metrics),
and the files a training run keeps next to them: the resume state and the initial weights.

No pickles: weights are safetensors, everything else is JSON. Both files are written
atomically, config last, so a folder with a config always has matching weights. The training
files hold plain tensors and a JSON dict; the training package gives them their meaning.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cnnscope.errors import CheckpointError
from cnnscope.files import atomic_path, write_json
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import ModelSpec

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "cnnscope-checkpoint/1"
TRAIN_STATE = "train_state.safetensors"
TRAIN_STATE_FORMAT = "cnnscope-train-state/1"
INITIAL_WEIGHTS = "initial.safetensors"
INITIAL_WEIGHTS_FORMAT = "cnnscope-initial-weights/1"


def library_versions() -> dict[str, str]:
    import numpy

    from cnnscope import __version__

    return {
        "cnnscope": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(model: CNN, directory: str | os.PathLike, **config) -> Path:
    """Write the model's weights and a config (spec + anything in `config`) to `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    body = {"format": FORMAT, "spec": model.spec.to_dict(), **config, "versions": library_versions()}
    write_json(directory / CONFIG, body)
    return directory


def read_config(directory: str | os.PathLike) -> dict:
    directory = Path(directory)
    path = directory / CONFIG if directory.is_dir() else directory
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {directory} (expected {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable cnnscope config: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cnnscope checkpoint (format {FORMAT!r} missing)")
    return config


def load_checkpoint(directory: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[CNN, dict]:
    """Load a checkpoint folder into a model in eval mode; returns (model, config)."""
    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    config = read_config(directory)
    model = CNN(ModelSpec.from_dict(config["spec"]))
    weights = directory / WEIGHTS
    if not weights.exists():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS}")
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint weights {weights} are corrupt or do not match the spec: {first}") from None
    model.to(device).eval()
    model.config = config  # type: ignore[attr-defined]
    return model, config


def default_model_dir() -> Path:
    """Where `cnnscope train` and `cnnscope demo` keep the default model."""
    from cnnscope.data.mnist import cnnscope_home

    return cnnscope_home() / "models" / "default"


def load_model(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> tuple[CNN, dict]:
    """Load the checkpoint at `path`, or the default model; a clear error if there is none."""
    if path is None:
        path = default_model_dir()
        if not (Path(path) / CONFIG).exists():
            raise CheckpointError(f"no trained model at {path}; run `cnnscope train` (or `make demo`) first, or pass --model DIR")
    return load_checkpoint(path, device)


# ---- the files of a training run -------------------------------------------------------------


def save_train_state(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write a training run's resume state into `directory`, atomically.

    Args:
        directory: the run's checkpoint folder.
        tensors: every tensor of the state (weights, optimizer moments), by name.
        meta: everything else; must be JSON-serialisable.

    Returns:
        The path of the written file.
    """
    tensors = {name: value.detach().cpu().contiguous() for name, value in tensors.items()}
    path = Path(directory) / TRAIN_STATE
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": TRAIN_STATE_FORMAT, "meta": json.dumps(meta)})
    return path


def read_train_state(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the metadata dict saved by `save_train_state`; a CheckpointError if the file
    is missing, corrupt or not a cnnscope training state."""
    path = Path(directory) / TRAIN_STATE
    if not path.exists():
        raise CheckpointError(f"no training state in {directory}: {TRAIN_STATE} is missing")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != TRAIN_STATE_FORMAT:
            raise CheckpointError(f"{path} is not a cnnscope training state")
        meta = json.loads(metadata["meta"])
        tensors = load_file(str(path))
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"training state {path} is corrupt: {_first_line(exc)}") from None
    return tensors, meta


def discard_train_state(directory: str | os.PathLike) -> None:
    """Remove the resume state in `directory`, if there is one (a new run voids it)."""
    (Path(directory) / TRAIN_STATE).unlink(missing_ok=True)


def save_initial_weights(directory: str | os.PathLike, weights: dict[str, torch.Tensor],
                         meta: dict | None = None) -> Path:
    """Write the weights a run started from into `directory`, atomically (for a later reset).

    Args:
        directory: the run's checkpoint folder.
        weights: the model's state dict.
        meta: JSON-serialisable facts about those weights (the training package stores the
            network's layout, which a reset keeps); read back by `read_initial_meta`.

    Returns:
        The path of the written file.
    """
    weights = {name: value.detach().cpu().contiguous() for name, value in weights.items()}
    path = Path(directory) / INITIAL_WEIGHTS
    metadata = {"format": INITIAL_WEIGHTS_FORMAT, "meta": json.dumps(meta or {})}
    with atomic_path(path) as tmp:
        save_file(weights, str(tmp), metadata=metadata)
    return path


def read_initial_meta(directory: str | os.PathLike) -> dict:
    """The `meta` dict saved with the initial weights ({} for files written without one)."""
    path = Path(directory) / INITIAL_WEIGHTS
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        meta = json.loads(metadata.get("meta", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"initial weights {path} are corrupt: {_first_line(exc)}") from None
    return meta if isinstance(meta, dict) else {}


def read_initial_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The weights saved by `save_initial_weights`; a CheckpointError if missing or corrupt."""
    path = Path(directory) / INITIAL_WEIGHTS
    if not path.exists():
        raise CheckpointError(f"no initial weights in {directory}: {INITIAL_WEIGHTS} is missing "
                              "(it is written when a run starts)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"initial weights {path} are corrupt: {exc}") from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
