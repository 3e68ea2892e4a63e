"""Training into a checkpoint folder: a new run, a resumed one, or one reset to its initial weights.

`CheckpointWriter` is the callback that keeps the folder current: after every epoch the resume
state, metrics.csv and the checkpoint (model.safetensors + config.json) are rewritten
atomically, config last. Pictures (curves.png) are drawn by higher layers, through the
`callbacks` of `run_training`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from cnnscope.data.mnist import Mnist, load_mnist
from cnnscope.errors import CheckpointError, UserError, check_whole
from cnnscope.files import check_output_folder, write_text
from cnnscope.nn.checkpoint import (
    CONFIG,
    INITIAL_WEIGHTS,
    TRAIN_STATE,
    WEIGHTS,
    default_model_dir,
    discard_train_state,
    read_config,
    read_initial_meta,
    read_initial_weights,
    save_checkpoint,
    save_initial_weights,
)
from cnnscope.runtime import pick_device
from cnnscope.training.loop import EpochCallback, train
from cnnscope.training.settings import LAYOUT_FIELDS, TrainSettings, recipe_settings
from cnnscope.training.state import (
    EpochRecord,
    TrainState,
    checkpoint_config,
    load_train_state,
    metrics_csv,
    new_state,
    save_train_state,
)

METRICS_CSV = "metrics.csv"


class CheckpointWriter(EpochCallback):
    """Keeps a checkpoint folder current: the initial weights when a run starts; after every epoch
    the resume state, metrics.csv and the checkpoint (model.safetensors + config.json)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def on_begin(self, state: TrainState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if state.epoch == 0:
            discard_train_state(self.directory)  # an older run's state is void now
            save_initial_weights(self.directory, state.model.state_dict(), {"layout": state.settings.layout})

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        save_train_state(state, self.directory)
        write_text(self.directory / METRICS_CSV, metrics_csv(state.history))
        save_checkpoint(state.final_model, self.directory, **checkpoint_config(state))


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
    callbacks: Sequence[EpochCallback] = (),
) -> TrainState:
    """Train into the folder `out`, writing the checkpoint after every epoch.

    Everything is validated and the data loaded before anything is written.

    A resumed or reset run keeps the network the folder's run started with: with `resume` the
    stored settings are used, with `reset` the layout and normalisation of the initial weights;
    a layout in `settings` that differs from that is refused.

    Args:
        settings: the run's settings; with `resume` None, or settings whose layout fields
            (conv, pools, dense, normalize), where not None, must match the stored run's.
        out: the checkpoint folder.
        data: mnist.npz or a folder of IDX files; None for the default download.
        resume: continue the run saved in `out` with its stored settings.
        reset: start again from the initial weights saved in `out`.
        epochs: with `resume`, the new total number of epochs (not fewer than done).
        device: where to train.
        progress: show a progress bar per epoch.
        log: receives the run's description and one line per epoch.
        callbacks: more epoch callbacks (e.g. one drawing curves.png), called before the
            checkpoint is written.

    Returns:
        The state after the last epoch.
    """
    out = Path(out)
    if resume and reset:
        raise UserError("resume and reset exclude each other", "resume")
    check_output_folder(out)
    state = _resumed_state(out, epochs, device) if resume else None
    if state is not None and settings is not None:
        _check_layout(settings, state.settings, out, "resume")
    settings = _run_settings(settings, state, epochs)
    initial = None
    if reset:
        initial = _initial_weights(out)
        settings = _check_layout(settings, _stored_layout(out, settings), out, "reset")
    mnist = load_mnist(data, split=settings.split, seed=settings.split_seed)
    if state is None:
        state = new_state(settings, mnist, device, initial_weights=initial)
    _describe_run(log, settings, mnist, state, out, resume, reset)
    return train(settings, mnist, state=state, device=device, callbacks=[*callbacks, CheckpointWriter(out)],
                 progress=progress, log=log)


def _resumed_state(out: Path, epochs: int | None, device) -> TrainState:
    if not (out / TRAIN_STATE).exists():
        raise CheckpointError(f"nothing to resume in {out}: {TRAIN_STATE} is missing (start a new run instead)",
                              "resume")
    state = load_train_state(out, device)
    if epochs is not None:
        check_whole("epochs", epochs, minimum=1)
        if epochs < state.epoch:
            raise UserError(f"{out} has already trained {state.epoch} epochs, more than {epochs}", "epochs")
    return state


def _run_settings(settings: TrainSettings | None, state: TrainState | None, epochs: int | None) -> TrainSettings:
    """The given settings, or a resumed run's stored ones with the new number of epochs."""
    if state is not None:
        settings = state.settings if epochs is None else replace(state.settings, epochs=epochs)
    if settings is None:
        raise UserError("no training settings given", "settings")
    return settings.validate()


def _stored_layout(out: Path, settings: TrainSettings) -> TrainSettings:
    """`settings` with the layout saved next to the initial weights (as they are if none was saved)."""
    stored = read_initial_meta(out).get("layout")
    if not isinstance(stored, dict):
        return settings
    try:
        return replace(settings, **{name: stored.get(name) for name in LAYOUT_FIELDS})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the layout saved with {out / INITIAL_WEIGHTS} is corrupt: {exc}") from None


def _check_layout(given: TrainSettings, stored: TrainSettings, out: Path, how: str) -> TrainSettings:
    """`stored` with `given`'s other knobs, if `given`'s layout fields (where set) agree with it;
    else a UserError naming the field."""
    for name in LAYOUT_FIELDS:
        value = getattr(given, name)
        if value is not None and not _same_network(replace(stored, **{name: value}), stored):
            raise UserError(f"{out} holds a run of the layout {stored.layout_text()} (normalisation "
                            f"{stored.normalization_mode}); --{how} keeps it, so a different --{name} is refused "
                            "(train into another folder for a new layout)", name)
    return replace(given, **stored.layout)


def _same_network(changed: TrainSettings, stored: TrainSettings) -> bool:
    try:
        return changed.same_network(stored)
    except UserError:  # the changed field does not even fit the stored layout
        return False


def _initial_weights(out: Path) -> dict[str, torch.Tensor]:
    if not (out / INITIAL_WEIGHTS).exists():
        raise CheckpointError(f"nothing to reset to: {out / INITIAL_WEIGHTS} does not exist "
                              "(it is written when a run starts)", "reset")
    return read_initial_weights(out)


def _describe_run(log: Callable[[str], None], settings: TrainSettings, mnist: Mnist, state: TrainState, out: Path,
                  resume: bool, reset: bool) -> None:
    log(f"training recipe {settings.recipe!r}: {settings.describe()}")
    log(f"data: {mnist.split} split (seed {mnist.seed}), {len(mnist.train_y)} train / {len(mnist.test_y)} test images, "
        f"from {mnist.source}")
    if resume:
        log(f"resuming at epoch {state.epoch} of {settings.epochs} (step {state.step})")
    if reset:
        log(f"starting from the initial weights saved in {out / INITIAL_WEIGHTS}")
    if not resume and (out / CONFIG).exists():
        log(f"checkpoint folder: {out} (replacing the run there after the first epoch; train into another folder to keep it)")
    else:
        log(f"checkpoint folder: {out}")


def is_complete_checkpoint(directory: str | os.PathLike) -> bool:
    """True if `directory` holds a checkpoint whose training finished all its epochs."""
    directory = Path(directory)
    if not (directory / CONFIG).exists():
        return False
    try:
        config = read_config(directory)
    except CheckpointError:
        return False
    return bool(config.get("complete")) and (directory / WEIGHTS).exists()


def ensure_default_model(log: Callable[[str], None] = print, data: str | os.PathLike | None = None,
                         device: torch.device | str | None = None, progress: bool = True,
                         callbacks: Sequence[EpochCallback] = ()) -> Path:
    """The default model's folder; trains the default recipe there first if it is missing
    (or continues an interrupted default run).

    Args:
        log: receives what is done.
        data: mnist.npz or a folder of IDX files; None for the default download.
        device: where to train; None picks one.
        progress: show a progress bar per epoch.
        callbacks: more epoch callbacks for `run_training` (e.g. one drawing curves.png).

    Returns:
        The folder of the default model.
    """
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
                 progress=progress, log=log, callbacks=callbacks)
    return directory
