"""Transformation robustness: sized to the image, geometrically right, undone in the gradient."""

from __future__ import annotations

import pytest
import torch

from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings, ascend
from cnnscope.optvis.starts import multiscale_noise
from cnnscope.optvis.transforms import Rotate, Shift, Zoom, affine, robustness


class PixelwiseModel(torch.nn.Module):
    """A 'network' of one layer that squares every pixel, weighted per map: shift-invariant under rolls."""

    layer_names = ["Square"]

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([1.0, -0.5]))

    def check_layer(self, name):
        return name

    def output_shape(self, name):
        return (2, 28, 28)

    def is_spatial(self, name):
        return True

    def activations(self, x, layers, normalize=False):
        out = torch.relu(x) ** 2 * self.weight.view(1, 2, 1, 1)
        return {name: out for name in layers}


def test_a_shifted_objective_of_a_shift_invariant_model_is_the_plain_one():
    model = PixelwiseModel()
    starts = multiscale_noise(3, seed=5)
    objective = O.per_element([O.channel("Square", 0), O.channel("Square", 1), O.channel("Square", 0)])
    settings = AscentSettings(steps=20, snapshot_steps=())
    plain = ascend(model, starts, objective, settings)
    shifted = ascend(model, starts, objective, settings, transforms=[Shift(0.2, seed=1)])
    assert torch.allclose(plain.values, shifted.values, rtol=1e-5, atol=1e-6)
    assert torch.allclose(plain.images, shifted.images, atol=1e-5)
    assert not torch.allclose(plain.images, starts, atol=1e-2)  # and the ascent did move the images


def test_shift_sizes_follow_the_image_and_the_transforms_differ_for_a_cnn(small_model):
    torch.manual_seed(0)
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 14, 14] = 1.0
    seen = set()
    shift = Shift(0.07, seed=0)  # 2 pixels at 28
    for _ in range(60):
        y, x = (int(v) for v in shift(image)[0, 0].nonzero()[0])
        seen.add((y - 14, x - 14))
    assert {dy for dy, _ in seen} == {-2, -1, 0, 1, 2} == {dx for _, dx in seen}
    big = Shift(0.07, seed=0)(torch.zeros(1, 1, 100, 100).index_put_((torch.tensor([0]), torch.tensor([0]),
                                                                        torch.tensor([50]), torch.tensor([50])),
                                                                       torch.tensor(1.0)))
    assert big.sum() == 1.0
    assert [type(t).__name__ for t in robustness()] == ["Shift", "Zoom", "Rotate"]
    starts = multiscale_noise(2, seed=6)
    objective = O.channel("Conv2D_3", 11)
    plain = ascend(small_model, starts, objective, AscentSettings(steps=10))
    robust = ascend(small_model, starts, objective, AscentSettings(steps=10, shift=0.07, zoom=0.05, rotate=5))
    assert not torch.allclose(plain.images, robust.images, atol=1e-3)
    assert bool((robust.final > robust.values[0]).all())


def test_rotation_and_zoom_are_geometric_and_their_gradient_is_the_adjoint():
    image = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    turned = affine(image, degrees=90)
    assert any(torch.allclose(turned, torch.rot90(image, k, dims=(-2, -1)), atol=1e-5) for k in (1, -1))
    assert torch.allclose(affine(image, zoom=1.0, degrees=0.0), image, atol=1e-5)
    x = torch.rand(1, 1, 9, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: affine(v, zoom=1.07, degrees=4.0), (x,))
    for transform in (Zoom(0.05, seed=1), Rotate(5, seed=1)):
        out = transform(image)
        assert out.shape == image.shape and not torch.equal(out, image)
        assert float((out - image).abs().mean()) < 0.2  # a small change, not a new picture
    with pytest.raises(ValueError, match="below half"):
        Shift(0.6)
