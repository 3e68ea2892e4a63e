"""The training loop: it learns on real images, is reproducible, and its penalties and
augmentations are what they claim."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from cnnscope.data.mnist import to_tensor
from cnnscope.training.loop import EpochCallback, augment_batch, penalty, train
from cnnscope.training.settings import TrainSettings
from cnnscope.training.state import new_model
from helpers import QUIET, TINY_TRAINING, flat_weights


def test_short_training_on_real_images_lowers_the_loss_and_beats_90_percent(mnist):
    state = train(TINY_TRAINING, mnist, **QUIET)
    first, last = state.history
    assert last.loss < first.loss
    assert last.test_loss < first.test_loss
    assert last.test_accuracy > 0.90  # on 1000 held-out test images
    assert state.step == 2 * math.ceil(3000 / 64)


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not(mnist):
    settings = replace(TINY_TRAINING, epochs=1, train_images=640, test_images=300, augment="shift")
    a = train(settings, mnist, **QUIET)
    b = train(settings, mnist, **QUIET)
    c = train(replace(settings, seed=1), mnist, **QUIET)
    assert torch.equal(flat_weights(a.model), flat_weights(b.model))
    assert a.history[0].test_loss == b.history[0].test_loss
    assert not torch.equal(flat_weights(a.model), flat_weights(c.model))


def test_epoch_callbacks_hear_the_start_every_epoch_and_the_end(mnist):
    heard = []

    class Listener(EpochCallback):
        def on_begin(self, state):
            heard.append(("begin", state.epoch))

        def on_epoch_end(self, state, record):
            heard.append(("epoch", record.epoch))

        def on_end(self, state):
            heard.append(("end", state.epoch))

    train(replace(TINY_TRAINING, train_images=200, test_images=100), mnist, callbacks=[Listener()], **QUIET)
    assert heard == [("begin", 0), ("epoch", 1), ("epoch", 2), ("end", 2)]


def test_l2_penalty_is_keras_sum_of_squares_on_dense_kernels_only():
    model = new_model(TrainSettings(), 0.0, 1.0)
    dense = model.body.Dense_1.weight.pow(2).sum() + model.body.Dense_2.weight.pow(2).sum()
    assert torch.allclose(penalty(model, TrainSettings(l2=1e-3)), 1e-3 * dense)
    conv = sum(model.body.get_submodule(n).weight.pow(2).sum() for n in ("Conv2D_1", "Conv2D_2", "Conv2D_3"))
    assert torch.allclose(penalty(model, TrainSettings(l2=1e-3, penalize_conv=True)), 1e-3 * (dense + conv))
    l1 = model.body.Dense_1.weight.abs().sum() + model.body.Dense_2.weight.abs().sum()
    assert torch.allclose(penalty(model, TrainSettings(l1=0.01)), 0.01 * l1)
    assert penalty(model, TrainSettings()).item() == 0.0


def test_shift_augmentation_moves_digits_without_cutting_them(mnist):
    x = to_tensor(mnist.train_x[:64])
    settings = TrainSettings(augment="shift", shift=2)
    shifted = augment_batch(x, settings, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    candidates = torch.stack([padded[:, :, dy : dy + 28, dx : dx + 28] for dy in range(5) for dx in range(5)], 1)
    matches = (candidates == shifted[:, None]).all(dim=(2, 3, 4))  # image i is some whole-pixel shift of x[i]
    assert matches.any(dim=1).all()
    assert (shifted != x).any(dim=(1, 2, 3)).float().mean() > 0.8
    affine = augment_batch(x, replace(settings, augment="affine"), torch.Generator().manual_seed(0))
    assert affine.shape == x.shape and affine.min() >= 0


def test_a_sigmoid_output_is_scored_as_keras_categorical_crossentropy():
    import torch.nn.functional as F

    from cnnscope.nn.model import CNN
    from cnnscope.nn.spec import ModelSpec
    from cnnscope.training.loop import class_scores

    model = CNN(ModelSpec.from_lists(dense=[(10, "sigmoid")]))
    outputs = torch.tensor([[0.9, 0.1] + [0.05] * 8, [1e-9] * 9 + [0.5]])
    targets = torch.tensor([0, 3])
    shares = outputs / outputs.sum(dim=1, keepdim=True)  # Keras: y_pred / sum, clipped to [eps, 1 - eps], -log
    expected = -torch.log(shares.clamp(1e-7, 1 - 1e-7)[torch.arange(2), targets]).mean()
    assert torch.allclose(F.cross_entropy(class_scores(model, outputs), targets), expected, rtol=1e-5)
    softmax_model = CNN(ModelSpec.from_lists())
    assert torch.equal(class_scores(softmax_model, outputs), outputs)  # logits stay logits
