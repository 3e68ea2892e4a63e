"""Learning-rate schedules: the rate as a pure function of the optimizer step, so that the step is
all a resumed run needs to continue the schedule."""

from __future__ import annotations

import math

from cnnscope.training.settings import TrainSettings


def learning_rate(settings: TrainSettings, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`.

    Args:
        settings: `schedule`, `lr` (initial, or peak for onecycle), `decay_rate`, `decay_steps`.
        step: optimizer steps done so far.
        total_steps: steps of the whole run (onecycle's shape depends on it).
        steps_per_epoch: the default decay period of the exponential schedule.

    Returns:
        The learning rate of that step.
    """
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
