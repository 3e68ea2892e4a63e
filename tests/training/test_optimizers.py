"""Optimizers: RMSprop as TensorFlow applies it, with the seed recipe's constants."""

from __future__ import annotations

import numpy as np
import torch

from cnnscope.training.optimizers import KerasRMSprop, make_optimizer
from cnnscope.training.settings import recipe_settings
from cnnscope.training.state import new_model


def test_seed_recipe_makes_keras_rmsprop():
    seed = recipe_settings("seed")
    optimizer = make_optimizer(seed, new_model(seed, 0.0, 1.0).parameters())
    group = optimizer.param_groups[0]
    assert (group["rho"], group["eps"], group["momentum"]) == (0.9, 1e-7, 0.8)  # Keras RMSprop


def test_rmsprop_follows_tensorflow_with_epsilon_inside_the_square_root():
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = KerasRMSprop([weight], lr=0.1, momentum=0.5)
    ms, mom, w = np.zeros(2), np.zeros(2), np.array([1.0, -2.0])
    for grad in ([0.3, -0.01], [0.2, 0.0], [-0.5, 1e-4]):
        weight.grad = torch.tensor(grad)
        optimizer.step()
        g = np.array(grad)
        ms = 0.9 * ms + 0.1 * g**2
        mom = 0.5 * mom + 0.1 * g / np.sqrt(ms + 1e-7)
        w = w - mom
    assert np.allclose(weight.detach().numpy(), w, atol=1e-6)
