"""Training into a checkpoint folder: a new run, a resumed one, or one reset to its initial weights.

`CheckpointWriter` is the callback that keeps the folder current: after every epoch the resume
state, metrics.csv and the checkpoint (model.safetensors + config.json) are rewritten
atomically, in that order, config last. Pictures (curves.png) are drawn by higher layers,
through the `callbacks` of `run_training`.

A kill at any moment leaves a folder that `resume` continues to the same numbers: a new run
saves its resume state at epoch 0 before it trains; the resume state is always at least as
new as the checkpoint, and config.json records the SHA-256 of its weights, so a resumed run
whose last save was cut short rewrites the checkpoint from its state before going on. Temp
files of killed writes are removed when the next run starts in the folder. A new run into a
folder that holds a run is refused unless forced, and a forced (or reset) run keeps the old
run's files until it has finished its first epoch.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from cnnscope.data.mnist import Mnist, load_mnist
from cnnscope.errors import CheckpointError, UserError, check_whole
from cnnscope.files import check_output_folder, sha256_file, write_text
from cnnscope.nn.checkpoint import (
    CONFIG,
    INITIAL_WEIGHTS,
    TRAIN_STATE,
    WEIGHTS,
    default_model_dir,
    read_config,
    read_initial_meta,
    read_initial_weights,
    save_checkpoint,
    save_initial_weights,
)
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import Normalization
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
    state_dict_shapes,
)

METRICS_CSV = "metrics.csv"
# the temp files of `cnnscope.files.atomic_path`: ".<name>.<8 random characters>.tmp<suffix>"
TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


class CheckpointWriter(EpochCallback):
    """Keeps a checkpoint folder current: the initial weights and the epoch-0 resume state when a
    run starts; after every epoch the resume state, metrics.csv and the checkpoint
    (model.safetensors + config.json).

    Args:
        directory: the run's checkpoint folder.
        keep_old_run: the folder holds an older run (a forced or reset run replaces it): its files
            stay until this run's first epoch is saved, so a kill before that leaves it intact.
    """

    def __init__(self, directory: str | os.PathLike, keep_old_run: bool = False):
        self.directory = Path(directory)
        self.keep_old_run = keep_old_run
        self.initial: tuple[dict[str, torch.Tensor], dict] | None = None

    def on_begin(self, state: TrainState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if state.epoch == 0:
            weights = {name: value.detach().cpu().clone() for name, value in state.model.state_dict().items()}
            self.initial = (weights, {"layout": state.settings.layout})
            if not self.keep_old_run:
                self._save_start(state)
        elif not checkpoint_matches(self.directory, state):
            self._save_epoch(state)  # the last save was cut short: the checkpoint lags the resume state

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        if self.initial is not None:
            self._save_start(None)
        self._save_epoch(state)

    def _save_start(self, state: TrainState | None) -> None:
        save_initial_weights(self.directory, *self.initial)
        self.initial = None
        if state is not None:
            save_train_state(state, self.directory)

    def _save_epoch(self, state: TrainState) -> None:
        save_train_state(state, self.directory)
        write_text(self.directory / METRICS_CSV, metrics_csv(state.history))
        save_checkpoint(state.final_model, self.directory, **checkpoint_config(state))


def checkpoint_matches(directory: str | os.PathLike, state: TrainState) -> bool:
    """True if the checkpoint in `directory` is the one `state` saves: config.json at the state's
    epoch and step, model.safetensors the weights that config was written with."""
    directory = Path(directory)
    try:
        config = read_config(directory)
        return (config.get("epoch"), config.get("step")) == (state.epoch, state.step) and \
            config.get("weights_sha256") == sha256_file(directory / WEIGHTS)
    except (CheckpointError, OSError):
        return False


def remove_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Remove the temp files that killed atomic writes left in `directory`; returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for path in directory.iterdir():
        if TEMP_FILE.match(path.name) and stat.S_ISREG(path.lstat().st_mode):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def holds_run(directory: str | os.PathLike) -> str | None:
    """"finished" or "interrupted" if `directory` holds a training run's files, else None."""
    directory = Path(directory)
    if not ((directory / CONFIG).exists() or (directory / TRAIN_STATE).exists()):
        return None
    return "finished" if is_complete_checkpoint(directory) else "interrupted"


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
    force: bool = False,
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
        force: start a new run even though `out` holds a finished or interrupted one (its files
            are kept until the new run has saved its first epoch); without it that is refused.

    Returns:
        The state after the last epoch.
    """
    out = Path(out)
    if resume and reset:
        raise UserError("resume and reset exclude each other", "resume")
    check_output_folder(out)
    previous = holds_run(out)
    if previous and not (resume or reset or force):
        raise UserError(f"{out} holds a {previous} training run; resume it, train into another folder, or force a "
                        "new run (the old one is kept until the new one has saved its first epoch)", "force")
    remove_temp_files(out)
    state = _resumed_state(out, epochs, device) if resume else None
    if state is not None and settings is not None:
        _check_layout(settings, state.settings, out, "resume")
    settings = _run_settings(settings, state, epochs)
    initial = None
    if reset:
        if not (out / INITIAL_WEIGHTS).exists():
            raise CheckpointError(f"nothing to reset to: {out / INITIAL_WEIGHTS} does not exist "
                                  "(it is written when a run starts)", "reset")
        settings = _check_layout(settings, _stored_layout(out, settings), out, "reset")
        initial = _initial_weights(out, settings)
    mnist = load_mnist(data, split=settings.split, seed=settings.split_seed)
    if state is None:
        state = new_state(settings, mnist, device, initial_weights=initial)
    _describe_run(log, settings, mnist, state, out, resume, reset)
    writer = CheckpointWriter(out, keep_old_run=previous is not None and not resume)
    return train(settings, mnist, state=state, device=device, callbacks=[*callbacks, writer],
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


def _initial_weights(out: Path, settings: TrainSettings) -> dict[str, torch.Tensor]:
    """The initial weights saved in `out`, checked against the network of `settings` before reading."""
    with torch.device("meta"):  # only the shapes: nothing is allocated
        shapes = state_dict_shapes(CNN(settings.model_spec(Normalization(settings.normalization_mode))))
    return read_initial_weights(out, shapes)


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
        log(f"checkpoint folder: {out} (replacing the run there once the first epoch is saved)")
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


DEFAULT_MODEL_RECIPE = "fast"  # what `cnnscope demo` trains: 99.44% in 3 epochs (training/settings.py)


def ensure_default_model(log: Callable[[str], None] = print, data: str | os.PathLike | None = None,
                         device: torch.device | str | None = None, progress: bool = True,
                         callbacks: Sequence[EpochCallback] = ()) -> Path:
    """The default model's folder; trains it there first if it is missing (or continues an
    interrupted run): `DEFAULT_MODEL_RECIPE`, the least measured wall time to 99.4%.

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
    resume = (directory / TRAIN_STATE).exists()
    if resume:
        try:
            load_train_state(directory)
        except CheckpointError:
            resume = False
    log(f"no trained default model in {directory}; training the {DEFAULT_MODEL_RECIPE} recipe (about a minute "
        "and a half on two CPU cores)")
    run_training(recipe_settings(DEFAULT_MODEL_RECIPE), directory, data=data, resume=resume, device=device,
                 progress=progress, log=log, callbacks=callbacks, force=True)
    return directory
