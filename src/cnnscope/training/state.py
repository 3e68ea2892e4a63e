"""A training run's state: the model it starts from, what it carries from epoch to epoch (weights,
EMA copy, optimizer, step, history), and how that state is saved and rebuilt for a resume.

The files themselves are read and written by `cnnscope.nn.checkpoint`, as plain tensors and a
JSON dict; this module gives them their meaning.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from cnnscope.data.mnist import Mnist
from cnnscope.errors import CheckpointError, UserError
from cnnscope.nn import checkpoint
from cnnscope.nn.model import CNN, per_pixel_statistics
from cnnscope.nn.spec import Normalization
from cnnscope.training.optimizers import make_optimizer
from cnnscope.training.settings import TrainSettings, settings_from_dict


@dataclass
class EpochRecord:
    """The numbers of one finished epoch (one row of metrics.csv)."""

    epoch: int
    step: int
    lr: float  # learning rate of the last step of the epoch
    loss: float  # mean training cross-entropy over the epoch's batches (training mode, no smoothing)
    accuracy: float  # mean training accuracy over the epoch's batches
    test_loss: float
    test_accuracy: float
    penalty: float  # L2/L1 term at the end of the epoch (added to the loss during training)
    seconds: float  # wall time of the epoch's training steps
    eval_seconds: float

    def line(self, epochs: int) -> str:
        """The epoch's log line, e.g. `epoch   2/4  loss 0.0421  acc  98.71%  ...`."""
        rate = 0 if self.seconds <= 0 else self.images / self.seconds
        return (
            f"epoch {self.epoch:>3}/{epochs}  loss {self.loss:.4f}  acc {100 * self.accuracy:6.2f}%  "
            f"test loss {self.test_loss:.4f}  test acc {100 * self.test_accuracy:6.2f}%  "
            f"lr {self.lr:.3g}  step {self.step}  ({self.seconds:.1f} s, {rate:,.0f} img/s)"
        )

    images: int = 0


@dataclass
class TrainState:
    """Everything needed to continue: model (+ EMA copy), optimizer, step and history."""

    settings: TrainSettings
    model: CNN
    optimizer: torch.optim.Optimizer
    ema_model: CNN | None = None
    epoch: int = 0
    step: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    train_seconds: float = 0.0
    data: dict = field(default_factory=dict)

    @property
    def final_model(self) -> CNN:
        """The model to save and evaluate: the EMA average if enabled, else the weights."""
        return self.ema_model if self.ema_model is not None else self.model


# ---- a fresh start ---------------------------------------------------------------------------


def normalization_stats(train_x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the training images in [0, 1] (float64, exact)."""
    values = train_x.astype(np.float64) / 255.0
    return float(values.mean()), float(values.std())


def new_model(settings: TrainSettings, mean: float, std: float,
              pixel_statistics: tuple[torch.Tensor, torch.Tensor] | None = None) -> CNN:
    """The settings' network (the seed CNN unless they give another layout), initialised from
    `settings.seed`.

    Args:
        settings: the layout, the normalisation mode, the initialisation and its seed.
        mean, std: the training images' mean and std (for the global normalisation).
        pixel_statistics: per-pixel (mean, std) tensors for the per_pixel normalisation
            (None leaves them at 0 and 1, e.g. when the weights are loaded afterwards).

    Returns:
        The model on the CPU.
    """
    mode = settings.normalization_mode
    normalization = Normalization("global", mean, std) if mode == "global" else Normalization(mode)
    torch.manual_seed(settings.seed)
    model = CNN(settings.model_spec(normalization))
    if pixel_statistics is not None:
        model.normalize.set_pixel_statistics(*pixel_statistics)
    if settings.init == "keras":
        generator = torch.Generator().manual_seed(settings.seed)
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                weight = module.weight  # (out, in) or (out, in, kh, kw)
                receptive_field = weight[0, 0].numel() if weight.dim() == 4 else 1
                fan_in, fan_out = weight.shape[1] * receptive_field, weight.shape[0] * receptive_field
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                with torch.no_grad():
                    module.weight.uniform_(-limit, limit, generator=generator)
                    module.bias.zero_()
    return model


def new_state(settings: TrainSettings, mnist: Mnist, device: torch.device | str = "cpu",
              initial_weights: dict[str, torch.Tensor] | None = None) -> TrainState:
    """A fresh training state: model initialised from the seed (or `initial_weights`).

    Args:
        settings: the run's settings (validated here).
        mnist: the data; its training images give the model's normalisation (all of the
            training split, also with `settings.train_images`).
        device: where the model lives.
        initial_weights: weights to start from instead of the seed's (a reset run).

    Returns:
        The state at epoch 0, step 0.
    """
    settings = settings.validate()
    mean, std = normalization_stats(mnist.train_x)
    pixels = per_pixel_statistics(mnist.train_x) if settings.normalization_mode == "per_pixel" else None
    model = new_model(settings, mean, std, pixels)
    if initial_weights is not None:
        _load_weights(model, initial_weights, "initial weights")
    model = _prepare(model, settings, device)
    ema = _prepare(_copy_model(model), settings, device) if settings.ema else None
    optimizer = make_optimizer(settings, model.parameters())
    data = {**mnist.describe(), "source": mnist.source, "mean": mean, "std": std}
    return TrainState(settings, model, optimizer, ema, data=data)


def _prepare(model: CNN, settings: TrainSettings, device) -> CNN:
    model = model.to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _copy_model(model: CNN) -> CNN:
    copy = CNN(model.spec)
    copy.load_state_dict(model.state_dict())
    return copy


def _load_weights(model: CNN, weights: dict[str, torch.Tensor], where: str) -> None:
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: weights do not match the network's layout: {str(exc).splitlines()[0]}") from None


# ---- what the checkpoint folder says about the run ------------------------------------------


def metrics_csv(history: Sequence[EpochRecord]) -> str:
    """The text of metrics.csv: a header of the EpochRecord fields, then one row per epoch."""
    buffer = io.StringIO()
    names = [f.name for f in fields(EpochRecord)]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow(asdict(record))
    return buffer.getvalue()


def checkpoint_config(state: TrainState) -> dict:
    """The config.json body (besides spec and versions) for a training state."""
    return {
        "data": {"split": state.settings.split, "seed": state.data.get("seed", 0),
                 "train": state.data.get("train"), "test": state.data.get("test"), "source": state.data.get("source", "")},
        "recipe": state.settings.recipe,
        "settings": asdict(state.settings),
        "epoch": state.epoch,
        "step": state.step,
        "complete": state.epoch >= state.settings.epochs,
        "metrics": _metrics(state),
        "history": [asdict(r) for r in state.history],
        "weights": "ema" if state.ema_model is not None else "final",
        "threads": torch.get_num_threads(),  # bitwise reproducible for the same thread count
    }


def _metrics(state: TrainState) -> dict:
    if not state.history:
        return {}
    last = state.history[-1]
    best = max(state.history, key=lambda r: r.test_accuracy)
    return {
        "test_accuracy": last.test_accuracy, "test_loss": last.test_loss,
        "train_accuracy": last.accuracy, "train_loss": last.loss,
        "best_test_accuracy": best.test_accuracy, "best_epoch": best.epoch,
        "train_seconds": round(state.train_seconds, 2),
        "images_per_second": round(sum(r.images for r in state.history) / max(1e-9, sum(r.seconds for r in state.history)), 1),
    }


# ---- saving and resuming --------------------------------------------------------------------


def save_train_state(state: TrainState, directory: str | os.PathLike) -> Path:
    """Write `state` as the resume state of the checkpoint folder `directory`.

    One safetensors file: model, EMA and optimizer tensors; JSON metadata for the rest.

    Returns:
        The path of the written file.
    """
    tensors = {f"model.{name}": value for name, value in state.model.state_dict().items()}
    if state.ema_model is not None:
        tensors.update({f"ema.{name}": value for name, value in state.ema_model.state_dict().items()})
    optim = state.optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for pid, values in optim["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {
        "settings": asdict(state.settings), "epoch": state.epoch, "step": state.step,
        "train_seconds": state.train_seconds, "history": [asdict(r) for r in state.history],
        "param_groups": optim["param_groups"], "optim_scalars": scalars, "data": state.data,
    }
    return checkpoint.save_train_state(directory, tensors, meta)


def load_train_state(directory: str | os.PathLike, device: torch.device | str = "cpu") -> TrainState:
    """Rebuild the training state saved in the checkpoint folder `directory` (to resume it).

    The state's JSON is checked against its schema (`training.state_schema`) and its tensors'
    names, shapes and dtypes against the network its settings describe before any tensor is
    read; every value must be finite.

    Args:
        directory: the folder of the interrupted run.
        device: where the model and the optimizer tensors go.

    Returns:
        The state after the last finished epoch; a CheckpointError if it is missing or corrupt.
    """
    from cnnscope.training.state_schema import checked_meta

    header, meta = checkpoint.read_train_state_header(directory)
    where = str(Path(directory) / checkpoint.TRAIN_STATE)
    try:
        meta = checked_meta(meta)
        settings = settings_from_dict(meta["settings"])
        mean_std = float(meta["data"]["mean"]), float(meta["data"]["std"])
        model = new_model(settings, *mean_std)
    except (TypeError, ValueError, UserError) as exc:
        raise CheckpointError(f"training state {where} is corrupt: {_first_line(exc)}") from None
    tensors = checkpoint.read_train_state(directory, _expected_tensors(header, model, settings, where))
    model, ema = _saved_models(tensors, model, settings, mean_std, device, where)
    optimizer = _saved_optimizer(tensors, meta, model, settings, device, where)
    history = [EpochRecord(**record) for record in meta["history"]]
    return TrainState(settings, model, optimizer, ema, meta["epoch"], meta["step"], history,
                      float(meta["train_seconds"]), dict(meta["data"]))


def state_dict_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of `model`'s state dict."""
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


def _expected_tensors(header: dict, model: CNN, settings: TrainSettings, where: str) -> dict[str, tuple[int, ...]]:
    """The tensors a state of `model` holds: its weights (and the EMA copy's), and per parameter
    the optimizer's tensors (a step count or the parameter's shape); the header's optimizer
    names must be of that form."""
    weights = state_dict_shapes(model)
    expected = {f"model.{name}": shape for name, shape in weights.items()}
    if settings.ema:
        expected.update({f"ema.{name}": shape for name, shape in weights.items()})
    parameters = [tuple(p.shape) for p in model.parameters()]
    for name, (_, shape) in header.items():
        if not name.startswith("optim."):
            continue
        parts = name.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(parameters) or \
                shape not in ((), parameters[int(parts[1])]):
            raise CheckpointError(f"training state {where} is corrupt: unexpected optimizer tensor {name} "
                                  f"of shape {list(shape)}")
        expected[name] = shape
    return expected


def _saved_models(tensors: dict[str, torch.Tensor], model: CNN, settings: TrainSettings,
                  mean_std: tuple[float, float], device, where: str) -> tuple[CNN, CNN | None]:
    _load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, where)
    model = _prepare(model, settings, device)
    ema = None
    if settings.ema:
        ema = new_model(settings, *mean_std)
        _load_weights(ema, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, where)
        ema = _prepare(ema, settings, device)
    return model, ema


def _saved_optimizer(tensors: dict[str, torch.Tensor], meta: dict, model: CNN, settings: TrainSettings,
                     device, where: str) -> torch.optim.Optimizer:
    optimizer = make_optimizer(settings, model.parameters())
    optim_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            optim_state.setdefault(int(pid), {})[name] = value.to(device)
    for pid, values in meta["optim_scalars"].items():
        optim_state.setdefault(int(pid), {}).update(values)
    try:
        optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"optimizer state in {where} does not match: {_first_line(exc)}") from None
    return optimizer


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
