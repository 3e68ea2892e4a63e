"""Checkpoints: `model.safetensors` (weights) + `config.json` (spec, data split, recipe, metrics),
and the files a training run keeps next to them: the resume state and the initial weights.

No pickles: weights are safetensors, everything else is JSON. Both files are written
atomically, config last, and the config records the SHA-256 of the weights it belongs to, so a
folder whose writes were interrupted between the two is detected (and a training run's resume
repairs it) instead of describing one save while holding another's weights.

Loading trusts nothing: only regular files are opened (a FIFO would hang), JSON is read up
to `MAX_JSON_BYTES`, the config fits the schema of `nn.checkpoint_schema` and its spec the
limits of `nn.spec` before a model is built, the weights file's tensor names, shapes and dtypes
(from its header) match the model before any tensor is read, and every value is finite.
"""

from __future__ import annotations

import json
import os
import platform
import stat
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from cnnscope.errors import CheckpointError, UserError
from cnnscope.files import sha256_file, sha256_hex, write_bytes, write_json
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import ModelSpec

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "cnnscope-checkpoint/1"
TRAIN_STATE = "train_state.safetensors"
TRAIN_STATE_FORMAT = "cnnscope-train-state/1"
INITIAL_WEIGHTS = "initial.safetensors"
INITIAL_WEIGHTS_FORMAT = "cnnscope-initial-weights/1"
MAX_JSON_BYTES = 16 * 2**20  # config.json, and the JSON inside a training state
TENSOR_DTYPE = "F32"  # the only dtype cnnscope writes and reads


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
    """Write the model's weights and a config (spec + anything in `config` + the weights' SHA-256)
    to `directory`, weights first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    data = save(state, metadata={"format": FORMAT})
    write_bytes(directory / WEIGHTS, data)
    body = {"format": FORMAT, "spec": model.spec.to_dict(), **config, "weights_sha256": sha256_hex([data]),
            "versions": library_versions()}
    write_json(directory / CONFIG, body)
    return directory


def read_config(directory: str | os.PathLike) -> dict:
    """The config.json of a checkpoint folder (or the file itself), checked against the schema;
    a CheckpointError naming the problem."""
    directory = Path(directory)
    path = directory / CONFIG if directory.is_dir() else directory
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {directory} (expected {CONFIG} and {WEIGHTS})")
    config = read_json_file(path, "cnnscope config")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cnnscope checkpoint (format {FORMAT!r} missing)")
    from cnnscope.nn.checkpoint_schema import check_config

    try:
        check_config(config)
    except UserError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return config


def read_json_file(path: Path, what: str):
    """The JSON value in the regular file `path` (at most MAX_JSON_BYTES); a CheckpointError if it
    is no regular file, too large or not JSON."""
    size = regular_file_size(path, what)
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path} is {size:,} bytes, more than the {MAX_JSON_BYTES:,} a {what} may have")
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_JSON_BYTES + 1)
        if len(text) > MAX_JSON_BYTES:
            raise CheckpointError(f"{path} is more than the {MAX_JSON_BYTES:,} bytes a {what} may have")
        return json.loads(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} is not a readable {what}: {_first_line(exc)}") from None


def regular_file_size(path: Path, what: str) -> int:
    """The size of `path` if it is a regular file (checked without opening it: a FIFO would block)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{what} {path} is not a regular file")
    return info.st_size


def load_checkpoint(directory: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[CNN, dict]:
    """Load a checkpoint folder into a model in eval mode; returns (model, config).

    The config and its spec are checked before the model is built, the weights file's header
    (names, shapes, dtypes) before its tensors are read, and the values must be finite.
    """
    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    config = read_config(directory)
    try:
        spec = ModelSpec.from_dict(config["spec"])
    except UserError as exc:
        raise CheckpointError(f"{directory / CONFIG}: {exc}") from None
    weights = directory / WEIGHTS
    if not weights.exists():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS}")
    regular_file_size(weights, "checkpoint weights")
    expected = config.get("weights_sha256")
    if expected is not None and sha256_file(weights) != expected:
        raise CheckpointError(f"{weights} is not the weights {CONFIG} was saved with (a write was interrupted "
                              "or the file was replaced); resume the training run to repair the folder "
                              "(cnnscope train --resume), or save the checkpoint again")
    model = CNN(spec)
    state = read_tensors(weights, {name: tuple(value.shape) for name, value in model.state_dict().items()},
                         "checkpoint weights")
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    model.config = config  # type: ignore[attr-defined]
    return model, config


def tensor_header(path: Path, what: str) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """({name: (dtype, shape)}, metadata) of a safetensors file, read from its header only."""
    regular_file_size(path, what)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = {name: (handle.get_slice(name).get_dtype(), tuple(handle.get_slice(name).get_shape()))
                      for name in handle.keys()}
            return header, handle.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{what} {path} are corrupt: {_first_line(exc)}") from None


def check_header(header: dict[str, tuple[str, tuple[int, ...]]], expected: dict[str, tuple[int, ...]],
                 path: Path, what: str) -> None:
    """A CheckpointError unless the file's tensors are exactly `expected` (names and shapes), F32."""
    missing, unknown = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or unknown:
        problem = f"lacks {', '.join(missing[:3])}" if missing else f"has unknown tensors {', '.join(unknown[:3])}"
        raise CheckpointError(f"{what} {path} do not match the spec: the file {problem}")
    for name, shape in expected.items():
        dtype, found = header[name]
        if dtype != TENSOR_DTYPE:
            raise CheckpointError(f"{what} {path}: tensor {name} has dtype {dtype}, expected {TENSOR_DTYPE}")
        if found != shape:
            raise CheckpointError(f"{what} {path}: tensor {name} has shape {list(found)}, the spec needs {list(shape)}")


def read_tensors(path: Path, expected: dict[str, tuple[int, ...]], what: str) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file `path`, after its header was checked against `expected`
    (names and shapes, dtype F32); every value must be finite."""
    header, _ = tensor_header(path, what)
    check_header(header, expected, path, what)
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in expected}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{what} {path} are corrupt: {_first_line(exc)}") from None
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != expected[name] or tensor.dtype != torch.float32:
            raise CheckpointError(f"{what} {path} changed while being read (tensor {name})")
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{what} {path}: tensor {name} holds NaN or infinite values")
    return tensors


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
    return write_bytes(path, save(tensors, metadata={"format": TRAIN_STATE_FORMAT, "meta": json.dumps(meta)}))


def read_train_state_header(directory: str | os.PathLike) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict]:
    """({tensor name: (dtype, shape)}, meta dict) of the resume state in `directory`, from the
    file's header only (no tensor is read); a CheckpointError if it is missing, corrupt or not a
    cnnscope training state."""
    path = Path(directory) / TRAIN_STATE
    if not path.exists():
        raise CheckpointError(f"no training state in {directory}: {TRAIN_STATE} is missing")
    header, metadata = tensor_header(path, "training state")
    if metadata.get("format") != TRAIN_STATE_FORMAT:
        raise CheckpointError(f"{path} is not a cnnscope training state")
    text = metadata.get("meta", "")
    if len(text) > MAX_JSON_BYTES:
        raise CheckpointError(f"training state {path} is corrupt: its metadata is more than {MAX_JSON_BYTES:,} bytes")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"training state {path} is corrupt: {_first_line(exc)}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"training state {path} is corrupt: its metadata is not a JSON object")
    return header, meta


def read_train_state(directory: str | os.PathLike,
                     expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The tensors of the resume state in `directory`, once its header matches `expected` (names
    and shapes, which the training package derives from the state's own settings)."""
    return read_tensors(Path(directory) / TRAIN_STATE, expected, "training state")


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
    return write_bytes(path, save(weights, metadata=metadata))


def read_initial_meta(directory: str | os.PathLike) -> dict:
    """The `meta` dict saved with the initial weights ({} for files written without one)."""
    path = Path(directory) / INITIAL_WEIGHTS
    _, metadata = tensor_header(path, "initial weights")
    try:
        meta = json.loads(metadata.get("meta", "{}")[:MAX_JSON_BYTES + 1])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"initial weights {path} are corrupt: {_first_line(exc)}") from None
    return meta if isinstance(meta, dict) else {}


def read_initial_weights(directory: str | os.PathLike,
                         expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The weights saved by `save_initial_weights`, once the file's header matches `expected`
    (the state dict shapes of the network they are for); a CheckpointError if missing or corrupt."""
    path = Path(directory) / INITIAL_WEIGHTS
    if not path.exists():
        raise CheckpointError(f"no initial weights in {directory}: {INITIAL_WEIGHTS} is missing "
                              "(it is written when a run starts)")
    return read_tensors(path, expected, "initial weights")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
