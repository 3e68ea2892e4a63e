"""Learning-rate schedules: Keras's decays and the one-cycle schedule, per optimizer step."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cnnscope.training.schedules import learning_rate
from cnnscope.training.settings import recipe_settings


def test_power_schedule_is_keras_inverse_time_decay():
    seed = recipe_settings("seed")
    # the article's log: "present lr: 1.31509732e-05, present iteration: 75040"
    assert learning_rate(seed, 75040, 10**6, 938) == pytest.approx(1.31509732e-05, rel=1e-6)
    assert learning_rate(seed, 0, 10, 938) == 1e-3
    exp = replace(seed, schedule="exponential", decay_rate=0.5, decay_steps=100)
    assert learning_rate(exp, 200, 10**6, 938) == pytest.approx(0.25e-3)
    one = replace(seed, schedule="onecycle", lr=1e-2)
    rates = [learning_rate(one, s, 1000, 100) for s in range(1000)]
    assert max(rates) == pytest.approx(1e-2, rel=1e-3) and rates[0] < 1e-3 and rates[-1] < 1e-5
