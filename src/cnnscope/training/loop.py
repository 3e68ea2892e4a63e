"""Training the seed CNN with the articles' knobs, fast on a CPU, resumable, reproducible.

`train(settings, mnist)` runs the loop and reports each epoch to callbacks; it writes no
files itself. `CheckpointWriter` (checkpoint + resume state + curves + metrics.csv after
every epoch) is the callback the CLI, `ensure_default_model` and the demo use.

Learning-rate schedules are pure functions of the optimizer step, so the whole training
state is: weights, optimizer tensors and the step. Shuffling and augmentation draw from
generators seeded by (seed, epoch), so a resumed run gives the same numbers as an
uninterrupted one, and two runs with the same seed on the same machine are identical.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cnnscope.data.mnist import Mnist, load_mnist, to_tensor
from cnnscope.errors import CheckpointError, UserError, check_choice, check_positive, check_whole
from cnnscope.files import atomic_path, check_output_folder, save_figure, write_text
from cnnscope.nn.checkpoint import CONFIG, default_model_dir, read_config, save_checkpoint
from cnnscope.nn.model import CNN, default_spec
from cnnscope.runtime import default_threads, device_of, pick_device, using_threads

OPTIMIZERS = ("adam", "rmsprop", "nadam", "adamax", "sgd")
SCHEDULES = ("onecycle", "power", "exponential", "none")
AUGMENTATIONS = ("none", "shift", "affine")
RECIPES = ("default", "seed", "best")
SPLITS = ("official", "seed")
INITS = ("keras", "torch")

TRAIN_STATE = "train_state.safetensors"
INITIAL_WEIGHTS = "initial.safetensors"
CURVES = "curves.png"
METRICS_CSV = "metrics.csv"
TRAIN_STATE_FORMAT = "cnnscope-train-state/1"


@dataclass(frozen=True)
class TrainSettings:
    """Every knob of a training run. `recipe_settings(name)` gives the three recipes."""

    recipe: str = "default"
    epochs: int = 4
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 3e-3  # initial (power/exponential/none) or peak (onecycle) learning rate
    momentum: float | None = None  # RMSprop/SGD momentum; beta1 for adam/nadam/adamax
    schedule: str = "onecycle"
    decay_rate: float | None = None  # power: 1e-3 (lr0/(1+rate*step/steps)); exponential: 0.9 (lr0*rate**(step/steps))
    decay_steps: int | None = None  # power: 1 step; exponential: one epoch of steps
    l2: float = 0.0  # Keras l2: loss += l2 * sum(w**2) over dense kernels
    l1: float = 0.0  # Keras l1: loss += l1 * sum(|w|) over dense kernels
    penalize_conv: bool = False  # apply l2/l1 to conv kernels too
    label_smoothing: float = 0.0
    augment: str = "none"  # none | shift (random whole-pixel shifts) | affine (shift+rotate+scale)
    shift: int = 2  # maximum shift in pixels for augmentation
    ema: float = 0.0  # exponential moving average of the weights (0 = off); the average is saved
    init: str = "keras"  # keras: glorot-uniform kernels, zero biases (the articles'); torch: PyTorch's default
    seed: int = 0  # weights, shuffling and augmentation
    split: str = "official"
    split_seed: int = 0  # only for split="seed"
    channels_last: bool = True  # memory format of the weights (faster on CPU, see benchmarks/train_speed.py)
    eval_batch: int = 100  # small inference batches stay in the CPU cache: ~3x faster than 10000
    threads: int | None = None  # torch CPU threads; None = default_threads()
    train_images: int | None = None  # use only the first N training images (quick runs, tests)
    test_images: int | None = None  # evaluate on the first N test images only (quick runs, tests)

    def validate(self) -> TrainSettings:
        check_choice("recipe", self.recipe, RECIPES + ("custom",))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("augmentation", self.augment, AUGMENTATIONS)
        check_choice("split", self.split, SPLITS)
        check_choice("init", self.init, INITS)
        check_whole("epochs", self.epochs, minimum=1)
        check_whole("batch size", self.batch_size, minimum=1)
        check_whole("eval batch", self.eval_batch, minimum=1)
        if self.threads is not None:
            check_whole("threads", self.threads, minimum=1)
        check_whole("shift", self.shift, minimum=0)
        check_positive("learning rate", self.lr)
        check_positive("l2", self.l2, allow_zero=True)
        check_positive("l1", self.l1, allow_zero=True)
        check_positive("label smoothing", self.label_smoothing, allow_zero=True)
        if self.label_smoothing >= 1:
            raise UserError(f"label smoothing must be < 1, got {self.label_smoothing}")
        if self.momentum is not None:
            check_positive("momentum", self.momentum, allow_zero=True)
            if self.momentum >= 1:
                raise UserError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.ema < 1:
            raise UserError(f"ema must be in [0, 1), got {self.ema}")
        if self.decay_rate is not None:
            check_positive("decay rate", self.decay_rate)
            if self.schedule == "exponential" and self.decay_rate > 1:
                raise UserError(f"exponential decay rate is a factor per decay period and must be <= 1, got {self.decay_rate}")
        if self.decay_steps is not None:
            check_whole("decay steps", self.decay_steps, minimum=1)
        if self.train_images is not None:
            check_whole("train images", self.train_images, minimum=1)
        if self.test_images is not None:
            check_whole("test images", self.test_images, minimum=1)
        if self.batch_size > 60000:
            raise UserError(f"batch size must be at most 60000 (the training set), got {self.batch_size}")
        return self

    def describe(self) -> str:
        parts = [f"{self.optimizer} lr {self.lr:g}"]
        if self.momentum is not None:
            parts.append(f"momentum {self.momentum:g}")
        schedule = f"schedule {self.schedule}"
        if self.schedule in ("power", "exponential"):
            rate = self.decay_rate if self.decay_rate is not None else (1e-3 if self.schedule == "power" else 0.9)
            steps = self.decay_steps or (1 if self.schedule == "power" else "1 epoch")
            schedule += f" (rate {rate:g} per {steps} step{'s' if steps != 1 else ''})"
        parts.append(schedule)
        parts.append(f"batch {self.batch_size}, {self.epochs} epochs")
        if self.l2:
            parts.append(f"L2 {self.l2:g}")
        if self.l1:
            parts.append(f"L1 {self.l1:g}")
        if self.augment != "none":
            parts.append(f"augment {self.augment} (+-{self.shift} px)")
        if self.ema:
            parts.append(f"weight EMA {self.ema:g}")
        if self.label_smoothing:
            parts.append(f"label smoothing {self.label_smoothing:g}")
        return ", ".join(parts)


def recipe_settings(name: str) -> TrainSettings:
    """The named recipe: `default` (fast, >= 99.3%), `seed` (the articles'), `best` (augmented)."""
    check_choice("recipe", name, RECIPES)
    if name == "seed":
        # Articles III/IV: RMSprop, lr 1e-3, momentum 0.8 (the value actually passed in the
        # call; the variable said 0.5), InverseTimeDecay(1e-3, decay_steps=1, rate=1e-3) per
        # optimizer step, L2 1e-3 on the dense kernels, batch 64. They trained up to 80 epochs
        # and reached 99.35-99.45% around epochs 13-35.
        return TrainSettings(recipe="seed", epochs=15, batch_size=64, optimizer="rmsprop", lr=1e-3,
                             momentum=0.8, schedule="power", decay_rate=1e-3, decay_steps=1, l2=1e-3)
    if name == "best":
        return TrainSettings(recipe="best", epochs=15, batch_size=128, optimizer="adam", lr=3e-3,
                             schedule="onecycle", augment="affine", shift=2, ema=0.999,
                             label_smoothing=0.05, l2=0.0)
    return TrainSettings(recipe="default")


def settings_from_dict(data: dict) -> TrainSettings:
    known = {f.name for f in fields(TrainSettings)}
    return TrainSettings(**{k: v for k, v in data.items() if k in known}).validate()


# ---- schedules: learning rate as a pure function of the step ----------------------------


def learning_rate(settings: TrainSettings, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`."""
    lr0 = settings.lr
    if settings.schedule == "power":  # Keras InverseTimeDecay, the articles' "powerSched"
        rate = 1e-3 if settings.decay_rate is None else settings.decay_rate
        steps = settings.decay_steps or 1
        return lr0 / (1.0 + rate * step / steps)
    if settings.schedule == "exponential":  # Keras ExponentialDecay
        rate = 0.9 if settings.decay_rate is None else settings.decay_rate
        steps = settings.decay_steps or steps_per_epoch
        return lr0 * rate ** (step / steps)
    if settings.schedule == "onecycle":  # cosine warm-up to lr0 for 25% of the run, cosine down
        warmup = max(1, int(0.25 * total_steps))
        start, end = lr0 / 25.0, lr0 / 25.0 / 1e3
        if step < warmup:
            return start + (lr0 - start) * (1 - math.cos(math.pi * step / warmup)) / 2
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return end + (lr0 - end) * (1 + math.cos(math.pi * progress)) / 2
    return lr0


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop exactly as TensorFlow 2 / Keras applies it (rho 0.9, epsilon 1e-7):

        ms  = rho * ms + (1 - rho) * g**2
        mom = momentum * mom + lr * g / sqrt(ms + eps);   w -= mom      (momentum > 0)
        w  -= lr * g / (sqrt(ms) + eps)                                 (momentum = 0)

    PyTorch's RMSprop differs: epsilon outside the square root (a floor of 1e-7 instead of
    Keras's 3e-4 on the denominator), rho 0.99, and the learning rate outside the momentum.
    """

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, momentum: float = 0.0, eps: float = 1e-7):
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, rho, momentum, eps = group["lr"], group["rho"], group["momentum"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["ms"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["mom"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                ms, mom = state["ms"], state["mom"]
                ms.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                if momentum > 0:
                    mom.mul_(momentum).addcdiv_(grad, (ms + eps).sqrt_(), value=lr)
                    param.sub_(mom)
                else:
                    param.addcdiv_(grad, ms.sqrt().add_(eps), value=-lr)
        return None


def make_optimizer(settings: TrainSettings, parameters) -> torch.optim.Optimizer:
    params = list(parameters)
    m = settings.momentum
    if settings.optimizer == "rmsprop":
        return KerasRMSprop(params, lr=settings.lr, momentum=m or 0.0)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=m or 0.0)
    betas = (0.9 if m is None else m, 0.999)
    if settings.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=settings.lr, betas=betas, eps=1e-7)
    if settings.optimizer == "adamax":
        return torch.optim.Adamax(params, lr=settings.lr, betas=betas, eps=1e-7)
    return torch.optim.Adam(params, lr=settings.lr, betas=betas, eps=1e-7)


# ---- model set-up -----------------------------------------------------------------------


def normalization_stats(train_x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the training images in [0, 1] (float64, exact)."""
    values = train_x.astype(np.float64) / 255.0
    return float(values.mean()), float(values.std())


def new_model(settings: TrainSettings, mean: float, std: float) -> CNN:
    """The seed CNN with the given normalisation, initialised from `settings.seed`."""
    torch.manual_seed(settings.seed)
    model = CNN(default_spec(mean, std))
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


def penalized_weights(model: CNN, include_conv: bool) -> list[torch.Tensor]:
    kinds = ("dense", "conv") if include_conv else ("dense",)
    return [model.body.get_submodule(layer.name).weight for layer in model.spec.layers if layer.kind in kinds]


def penalty(model: CNN, settings: TrainSettings) -> torch.Tensor:
    """Keras-style kernel regularisation: l2 * sum(w^2) + l1 * sum(|w|)."""
    total = torch.zeros((), device=device_of(model))
    if not (settings.l2 or settings.l1):
        return total
    for weight in penalized_weights(model, settings.penalize_conv):
        if settings.l2:
            total = total + settings.l2 * weight.pow(2).sum()
        if settings.l1:
            total = total + settings.l1 * weight.abs().sum()
    return total


def _epoch_generator(seed: int, epoch: int, purpose: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(epoch), purpose]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def augment_batch(images: torch.Tensor, settings: TrainSettings, generator: torch.Generator) -> torch.Tensor:
    """Random whole-pixel shifts (`shift`) or small affine distortions (`affine`) of a batch."""
    n = images.shape[0]
    if settings.augment == "shift" and settings.shift > 0:
        s = settings.shift
        padded = F.pad(images, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(images.device)
        dx = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(images.device)
        size = images.shape[-1]
        ar = torch.arange(size, device=images.device)
        rows = (dy[:, None] + ar[None, :])[:, :, None]
        cols = (dx[:, None] + ar[None, :])[:, None, :]
        batch = torch.arange(n, device=images.device)[:, None, None]
        return padded[batch, 0, rows, cols].unsqueeze(1)
    if settings.augment == "affine":
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
        scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
        size = images.shape[-1]
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * settings.shift / size)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return images


# ---- the loop -----------------------------------------------------------------------------


@dataclass
class EpochRecord:
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


class Callback:
    """Hooks called by `train`; override what you need."""

    def on_begin(self, state: TrainState) -> None:  # noqa: B027 - optional hook
        pass

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:  # noqa: B027
        pass

    def on_end(self, state: TrainState) -> None:  # noqa: B027
        pass


def new_state(settings: TrainSettings, mnist: Mnist, device: torch.device | str = "cpu",
              initial_weights: dict[str, torch.Tensor] | None = None) -> TrainState:
    """A fresh training state: model initialised from the seed (or `initial_weights`)."""
    settings = settings.validate()
    mean, std = normalization_stats(mnist.train_x)
    model = new_model(settings, mean, std)
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


def train(
    settings: TrainSettings,
    mnist: Mnist,
    *,
    state: TrainState | None = None,
    device: torch.device | str = "cpu",
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainState:
    """Train (or continue `state`) until `settings.epochs` epochs are done; returns the state."""
    settings = settings.validate()
    with using_threads(settings.threads or default_threads()):
        return _train(settings, mnist, state, device, callbacks, progress, log)


def _train(settings, mnist, state, device, callbacks, progress, log) -> TrainState:
    if state is None:
        state = new_state(settings, mnist, device)
    else:
        state.settings = settings
    device = device_of(state.model)
    train_x_np, train_y_np = mnist.train_x, mnist.train_y
    if settings.train_images is not None:
        train_x_np, train_y_np = train_x_np[: settings.train_images], train_y_np[: settings.train_images]
    train_x = to_tensor(train_x_np).to(device)
    train_y = torch.from_numpy(train_y_np.astype(np.int64)).to(device)
    test_count = settings.test_images or len(mnist.test_y)
    test_x = to_tensor(mnist.test_x[:test_count]).to(device)
    test_y = torch.from_numpy(mnist.test_y[:test_count].astype(np.int64)).to(device)
    n = len(train_y)
    batch = min(settings.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    total_steps = steps_per_epoch * settings.epochs
    model, optimizer = state.model, state.optimizer
    for callback in callbacks:
        callback.on_begin(state)
    while state.epoch < settings.epochs:
        epoch = state.epoch + 1
        order = torch.randperm(n, generator=_epoch_generator(settings.seed, epoch, 0)).to(device)
        augment_gen = _epoch_generator(settings.seed, epoch, 1)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        model.train()
        started = time.perf_counter()
        bar = _progress_bar(steps_per_epoch, f"epoch {epoch}/{settings.epochs}", progress)
        for index in range(steps_per_epoch):
            chosen = order[index * batch : (index + 1) * batch]
            xb, yb = train_x[chosen], train_y[chosen]
            if settings.augment != "none":
                xb = augment_batch(xb, settings, augment_gen)
            lr = learning_rate(settings, state.step, total_steps, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            logits = model(xb)
            data_loss = F.cross_entropy(logits, yb, label_smoothing=settings.label_smoothing)
            loss = data_loss + penalty(model, settings)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.step += 1
            if state.ema_model is not None:
                _update_ema(state.ema_model, model, settings.ema, state.step)
            with torch.no_grad():
                plain = data_loss if not settings.label_smoothing else F.cross_entropy(logits, yb)
                loss_sum += plain.detach() * len(yb)  # reported loss: plain cross-entropy
                correct += (logits.argmax(1) == yb).sum()
            if bar is not None:
                bar.update(1)
                if index % 25 == 0:
                    bar.set_postfix_str(f"loss {data_loss.item():.4f} lr {lr:.2g}")
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - started
        eval_started = time.perf_counter()
        test_loss, test_accuracy = evaluate_loss_accuracy(state.final_model, test_x, test_y, settings.eval_batch)
        with torch.no_grad():
            penalty_value = float(penalty(model, settings))
        record = EpochRecord(
            epoch=epoch, step=state.step, lr=float(lr), loss=float(loss_sum) / n, accuracy=int(correct) / n,
            test_loss=test_loss, test_accuracy=test_accuracy, penalty=penalty_value, seconds=seconds,
            eval_seconds=time.perf_counter() - eval_started, images=n,
        )
        state.epoch = epoch
        state.history.append(record)
        state.train_seconds += record.seconds + record.eval_seconds
        log(record.line(settings.epochs))
        for callback in callbacks:
            callback.on_epoch_end(state, record)
    for callback in callbacks:
        callback.on_end(state)
    state.final_model.eval()
    return state


def _update_ema(ema_model: CNN, model: CNN, decay: float, step: int) -> None:
    """Exponential moving average of the weights, with the usual warm-up of the decay."""
    rate = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for average, current in zip(ema_model.parameters(), model.parameters(), strict=True):
            average.lerp_(current, 1 - rate)


def _progress_bar(total: int, description: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, leave=False, file=sys.stderr, unit="batch", dynamic_ncols=True)


def evaluate_loss_accuracy(model: CNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on images (N x 1 x 28 x 28 in [0, 1])."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(images[start : start + batch_size])
            target = labels[start : start + batch_size]
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    return loss_sum / len(labels), correct / len(labels)


# ---- saving and resuming --------------------------------------------------------------------


def checkpoint_config(state: TrainState) -> dict:
    """The config.json body (besides spec and versions) for a training state."""
    last = state.history[-1] if state.history else None
    metrics = {}
    if last is not None:
        best = max(state.history, key=lambda r: r.test_accuracy)
        metrics = {
            "test_accuracy": last.test_accuracy, "test_loss": last.test_loss,
            "train_accuracy": last.accuracy, "train_loss": last.loss,
            "best_test_accuracy": best.test_accuracy, "best_epoch": best.epoch,
            "train_seconds": round(state.train_seconds, 2),
            "images_per_second": round(sum(r.images for r in state.history) / max(1e-9, sum(r.seconds for r in state.history)), 1),
        }
    return {
        "data": {"split": state.settings.split, "seed": state.data.get("seed", 0),
                 "train": state.data.get("train"), "test": state.data.get("test"), "source": state.data.get("source", "")},
        "recipe": state.settings.recipe,
        "settings": asdict(state.settings),
        "epoch": state.epoch,
        "step": state.step,
        "complete": state.epoch >= state.settings.epochs,
        "metrics": metrics,
        "history": [asdict(r) for r in state.history],
        "weights": "ema" if state.ema_model is not None else "final",
        "threads": torch.get_num_threads(),  # bitwise reproducible for the same thread count
    }


def save_train_state(state: TrainState, path: str | os.PathLike) -> Path:
    """One safetensors file with model, EMA and optimizer tensors; JSON metadata for the rest."""
    tensors: dict[str, torch.Tensor] = {}
    for name, value in state.model.state_dict().items():
        tensors[f"model.{name}"] = value.detach().cpu().contiguous()
    if state.ema_model is not None:
        for name, value in state.ema_model.state_dict().items():
            tensors[f"ema.{name}"] = value.detach().cpu().contiguous()
    optim = state.optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for pid, values in optim["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {
        "settings": asdict(state.settings), "epoch": state.epoch, "step": state.step,
        "train_seconds": state.train_seconds, "history": [asdict(r) for r in state.history],
        "param_groups": optim["param_groups"], "optim_scalars": scalars, "data": state.data,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": TRAIN_STATE_FORMAT, "meta": json.dumps(meta)})
    return path


def load_train_state(directory: str | os.PathLike, device: torch.device | str = "cpu") -> TrainState:
    """Rebuild the training state saved in `directory` (for `--resume`)."""
    path = Path(directory) / TRAIN_STATE
    if not path.exists():
        raise CheckpointError(f"nothing to resume in {directory}: {TRAIN_STATE} is missing (train without --resume)")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != TRAIN_STATE_FORMAT:
            raise CheckpointError(f"{path} is not a cnnscope training state")
        meta = json.loads(metadata["meta"])
        tensors = load_file(str(path))
        settings = settings_from_dict(meta["settings"])
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, UserError) as exc:
        raise CheckpointError(f"training state {path} is corrupt: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    mean_std = _normalization_from_tensors(meta)
    model = new_model(settings, *mean_std)
    _load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    model = _prepare(model, settings, device)
    ema = None
    if settings.ema:
        ema = new_model(settings, *mean_std)
        _load_weights(ema, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, str(path))
        ema = _prepare(ema, settings, device)
    optimizer = make_optimizer(settings, model.parameters())
    optim_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            optim_state.setdefault(int(pid), {})[name] = value.to(device)
    for pid, values in meta.get("optim_scalars", {}).items():
        optim_state.setdefault(int(pid), {}).update(values)
    try:
        optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"optimizer state in {path} does not match: {exc}") from None
    history = [EpochRecord(**record) for record in meta["history"]]
    return TrainState(settings, model, optimizer, ema, int(meta["epoch"]), int(meta["step"]), history,
                      float(meta.get("train_seconds", 0.0)), dict(meta.get("data", {})))


def _normalization_from_tensors(meta: dict) -> tuple[float, float]:
    data = meta.get("data", {})
    return float(data["mean"]), float(data["std"])


def _load_weights(model: CNN, weights: dict[str, torch.Tensor], where: str) -> None:
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: weights do not match the seed CNN: {str(exc).splitlines()[0]}") from None


def read_initial_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(directory) / INITIAL_WEIGHTS
    if not path.exists():
        raise CheckpointError(f"cannot --reset: {path} does not exist (it is written when a run starts)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"initial weights {path} are corrupt: {exc}") from None


class CheckpointWriter(Callback):
    """After every epoch: training state, checkpoint (model.safetensors + config.json),
    curves.png and metrics.csv in `directory`, each written atomically."""

    def __init__(self, directory: str | os.PathLike, curves: bool = True):
        self.directory = Path(directory)
        self.curves = curves

    def on_begin(self, state: TrainState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if state.epoch == 0:
            (self.directory / TRAIN_STATE).unlink(missing_ok=True)  # an older run's state is void now
            weights = {k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
            with atomic_path(self.directory / INITIAL_WEIGHTS) as tmp:
                save_file(weights, str(tmp), metadata={"format": "cnnscope-initial-weights/1"})

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        save_train_state(state, self.directory / TRAIN_STATE)
        write_text(self.directory / METRICS_CSV, metrics_csv(state.history))
        if self.curves:
            save_figure(self.directory / CURVES, curves_figure(state.history, state.settings))
        save_checkpoint(state.final_model, self.directory, **checkpoint_config(state))


def metrics_csv(history: Sequence[EpochRecord]) -> str:
    buffer = io.StringIO()
    names = [f.name for f in fields(EpochRecord)]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow(asdict(record))
    return buffer.getvalue()


def curves_figure(history: Sequence[EpochRecord] | Sequence[dict], settings: TrainSettings | dict | None = None):
    """Accuracy, loss (train vs test) and learning rate per epoch, as in the articles' live plot."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = [r if isinstance(r, dict) else asdict(r) for r in history]
    epochs = [r["epoch"] for r in rows]
    figure = Figure(figsize=(12, 3.6))
    ax_acc, ax_loss, ax_lr = figure.subplots(1, 3)
    ax_acc.plot(epochs, [100 * r["accuracy"] for r in rows], "o-", color="tab:green", label="train")
    ax_acc.plot(epochs, [100 * r["test_accuracy"] for r in rows], "o-", color="tab:red", label="test")
    ax_acc.axhline(99.35, color="tab:blue", lw=0.8, ls="--", label="99.35% (articles)")
    lowest_test = min(100 * r["test_accuracy"] for r in rows)
    ax_acc.set_ylim(max(0.0, min(98.0, lowest_test) - 0.3), 100.02)  # the 99% region readable; early
    ax_acc.set_title("accuracy (%)")  # training values below the axis are cut off
    ax_loss.plot(epochs, [r["loss"] for r in rows], "o-", color="tab:green", label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in rows], "o-", color="tab:red", label="test")
    ax_loss.set_yscale("log")
    ax_loss.set_title("cross-entropy loss")
    schedule = _schedule_curve(rows, settings)
    if schedule is not None:
        ax_lr.plot(*schedule, "-", color="tab:purple", lw=1.2)
        ax_lr.set_title("learning rate per optimizer step")
    ax_lr.plot(epochs, [r["lr"] for r in rows], "o", color="tab:purple")
    if schedule is None:
        ax_lr.set_title("learning rate (end of epoch)")
    ax_lr.set_yscale("log")
    for ax in (ax_loss, ax_lr):  # plain tick labels (no mathtext) on the log axes
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    for ax in (ax_acc, ax_loss, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(epochs) < 25:
            ax.set_xticks(epochs)
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_loss.legend(loc="upper right", fontsize=8)
    if settings is not None:
        text = settings.describe() if isinstance(settings, TrainSettings) else settings_from_dict(settings).describe()
        figure.suptitle(text, fontsize=9)
    figure.tight_layout()
    return figure


def _schedule_curve(rows: list[dict], settings) -> tuple[list[float], list[float]] | None:
    """(epoch position, learning rate) for up to 2000 optimizer steps of the run, from the settings."""
    if settings is None or not rows:
        return None
    if isinstance(settings, dict):
        try:
            settings = settings_from_dict(settings)
        except UserError:
            return None
    steps_per_epoch = max(1, rows[0]["step"])
    total = steps_per_epoch * settings.epochs
    shown = rows[-1]["step"]
    stride = max(1, shown // 2000)
    steps = list(range(0, shown, stride))
    return [s / steps_per_epoch for s in steps], [learning_rate(settings, s, total, steps_per_epoch) for s in steps]


# ---- the entry points used by the CLI and the demo ------------------------------------------


def run_training(
    settings: TrainSettings | None,
    out: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    resume: bool = False,
    reset: bool = False,
    epochs: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainState:
    """Train into the folder `out`, writing the checkpoint after every epoch.

    `resume`: continue the run saved in `out` with its stored settings (`epochs` may raise
    the total); `reset`: start again from the initial weights saved in `out`. Everything is
    validated and the data loaded before anything is written.
    """
    out = Path(out)
    if resume and reset:
        raise UserError("--resume and --reset exclude each other")
    check_output_folder(out)
    state = None
    if resume:
        state = load_train_state(out, device)
        settings = state.settings
        if epochs is not None:
            check_whole("epochs", epochs, minimum=1)
            if epochs < state.epoch:
                raise UserError(f"{out} has already trained {state.epoch} epochs; --epochs {epochs} is fewer")
            settings = replace(settings, epochs=epochs)
    if settings is None:
        raise UserError("no training settings given")
    settings = settings.validate()
    initial = read_initial_weights(out) if reset else None
    mnist = load_mnist(data, split=settings.split, seed=settings.split_seed)
    if state is None:
        state = new_state(settings, mnist, device, initial_weights=initial)
    log(f"training recipe {settings.recipe!r}: {settings.describe()}")
    log(f"data: {mnist.split} split (seed {mnist.seed}), {len(mnist.train_y)} train / {len(mnist.test_y)} test images, from {mnist.source}")
    if resume:
        log(f"resuming at epoch {state.epoch} of {settings.epochs} (step {state.step})")
    if reset:
        log(f"starting from the initial weights saved in {out / INITIAL_WEIGHTS}")
    if not resume and (out / CONFIG).exists():
        log(f"checkpoint folder: {out} (replacing the run there after the first epoch; use --out to keep it)")
    else:
        log(f"checkpoint folder: {out}")
    return train(settings, mnist, state=state, device=device, callbacks=[CheckpointWriter(out)],
                 progress=progress, log=log)


def is_complete_checkpoint(directory: str | os.PathLike) -> bool:
    """True if `directory` holds a checkpoint whose training finished all its epochs."""
    directory = Path(directory)
    if not (directory / CONFIG).exists():
        return False
    try:
        config = read_config(directory)
    except CheckpointError:
        return False
    return bool(config.get("complete")) and (directory / "model.safetensors").exists()


def ensure_default_model(log: Callable[[str], None] = print, data: str | os.PathLike | None = None,
                         device: torch.device | str | None = None, progress: bool = True) -> Path:
    """The default model's folder; trains the default recipe there first if it is missing
    (or continues an interrupted default run)."""
    directory = default_model_dir()
    if is_complete_checkpoint(directory):
        return directory
    device = pick_device(None if device is None else str(device))
    resume = (directory / TRAIN_STATE).exists() and (directory / CONFIG).exists()
    if resume:
        try:
            load_train_state(directory)
        except CheckpointError:
            resume = False
    log(f"no trained default model in {directory}; training the default recipe (a few minutes on a CPU)")
    run_training(recipe_settings("default"), directory, data=data, resume=resume, device=device,
                 progress=progress, log=log)
    return directory


# ---- report ---------------------------------------------------------------------------------


def report_section(ctx):
    """Training curves and the facts of the run, for the demo report."""
    from cnnscope.app.report import Figure as ReportFigure
    from cnnscope.app.report import Section

    config = ctx.config
    history = config.get("history") or []
    settings = config.get("settings") or {}
    metrics = config.get("metrics") or {}
    facts: dict[str, str] = {"recipe": str(config.get("recipe", "?"))}
    if settings:
        try:
            facts["settings"] = settings_from_dict(settings).describe()
        except UserError:
            facts["settings"] = json.dumps(settings)
    data = config.get("data") or {}
    facts["data"] = f"{data.get('split', 'official')} split (seed {data.get('seed', 0)})"
    if metrics:
        facts["test accuracy"] = f"{100 * metrics['test_accuracy']:.2f}% after {config.get('epoch')} epochs"
        facts["best test accuracy"] = f"{100 * metrics['best_test_accuracy']:.2f}% (epoch {metrics['best_epoch']})"
        facts["training time"] = f"{metrics['train_seconds']:.0f} s ({metrics['images_per_second']:,.0f} images/s)"
        facts["weights"] = "moving average of the weights (EMA)" if config.get("weights") == "ema" else "final weights"
    figures = []
    if history:
        save_figure(Path(ctx.folder) / "training_curves.png", curves_figure(history, settings or None))
        figures.append(ReportFigure("training_curves.png",
                                    "Accuracy and cross-entropy per epoch (train: mean over the epoch's batches; "
                                    "test: after the epoch), and the learning rate."))
        intro = f"The model was trained for {config.get('epoch')} epochs; the curves are stored in its checkpoint."
    else:
        intro = "This checkpoint carries no training history (it was not made by `cnnscope train`)."
    return Section("Training", intro, figures, facts)
