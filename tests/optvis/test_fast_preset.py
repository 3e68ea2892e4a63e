"""The `--fast` preset: a falling normalised step (half cosine), per-target early stopping."""

from __future__ import annotations

import math

import pytest
import torch

from cnnscope.errors import UserError
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.oip import find_oips, map_objectives
from cnnscope.optvis.steps import NormalizedGradient, cosine_epsilon


def test_cosine_epsilon_falls_from_start_to_end_and_stays():
    assert cosine_epsilon(0.5, 0.01, 100, 0) == pytest.approx(0.5)
    assert cosine_epsilon(0.5, 0.01, 100, 50) == pytest.approx(0.255)
    assert cosine_epsilon(0.5, 0.01, 100, 25) == pytest.approx(0.01 + 0.245 * (1 + math.cos(math.pi / 4)))
    assert cosine_epsilon(0.5, 0.01, 100, 100) == pytest.approx(0.01)
    assert cosine_epsilon(0.5, 0.01, 100, 140) == pytest.approx(0.01)


def test_falling_step_moves_by_the_scheduled_rms():
    gradient = torch.arange(32, dtype=torch.float32).view(2, 1, 4, 4) - 10
    images = torch.zeros(2, 1, 4, 4)
    rule = NormalizedGradient(0.5, 0.01, steps=10)
    for step, expected in ((0, 0.5), (5, 0.255), (10, 0.01)):
        moved = rule(images, gradient, step)
        rms = moved.pow(2).flatten(1).mean(dim=1).sqrt()
        assert torch.allclose(rms, torch.full((2,), expected), rtol=1e-5)
    constant = NormalizedGradient(0.01)(images, gradient, 7)
    assert torch.allclose(constant.pow(2).flatten(1).mean(dim=1).sqrt(), torch.full((2,), 0.01), rtol=1e-5)


def test_fast_preset_values_and_overrides():
    fast = AscentSettings.fast()
    assert (fast.steps, fast.epsilon, fast.epsilon_end, fast.early_stop, fast.tolerance, fast.rule,
            fast.standardize) == (150, 0.5, 0.01, True, 1e-4, "normalized", True)
    assert AscentSettings.fast(steps=80, seed=3).steps == 80
    assert AscentSettings().epsilon_end is None  # the articles' rule stays the default
    with pytest.raises(UserError, match="epsilon end"):
        AscentSettings(epsilon_end=-1.0).check()


def test_fast_preset_climbs_higher_than_the_articles_rule_in_the_same_steps(small_model):
    targets = map_objectives(small_model, "Conv2D_3")[:8]
    articles = find_oips(small_model, targets, AscentSettings(steps=40))
    fast = find_oips(small_model, targets, AscentSettings.fast(steps=40))
    both = articles.reacted & fast.reacted
    assert int(both.sum()) >= 4
    assert float(fast.final[both].median()) > float(articles.final[both].median())
    assert int(fast.steps_used.max()) <= 40
    again = find_oips(small_model, targets, AscentSettings.fast(steps=40))
    assert torch.equal(again.images, fast.images)  # same seed, same numbers
