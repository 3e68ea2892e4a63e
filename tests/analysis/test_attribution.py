"""analysis.attribution: shapes, targets, focus on the digit, determinism, receptive fields, frozen models, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnscope.analysis import attribution
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import ModelSpec, Normalization


@pytest.fixture(scope="module")
def digits(mnist):
    return to_tensor(mnist.test_x[:16])


def test_every_method_returns_n_x_h_x_w(small_model, digits):
    for method in attribution.METHODS:
        options = {"samples": 4} if method == "smoothgrad" else {}
        out = attribution.attribute(method, small_model, digits[:3], None, **options)
        assert out.shape == (3, 28, 28) and out.dtype == torch.float32
        assert torch.isfinite(out).all() and out.abs().sum() > 0


def test_target_none_means_the_predicted_class(small_model, digits):
    predicted = small_model(digits).argmax(dim=1)
    assert torch.equal(attribution.resolve_target(small_model, digits, None), predicted)
    assert torch.equal(attribution.resolve_target(small_model, digits[:2], 3), torch.tensor([3, 3]))
    explicit = attribution.saliency(small_model, digits[:4], predicted[:4])
    assert torch.allclose(attribution.saliency(small_model, digits[:4]), explicit)
    other = attribution.saliency(small_model, digits[:4], (predicted[:4] + 1) % 10)
    assert not torch.allclose(other, explicit)


def test_saliency_is_the_input_gradient(small_model, digits):
    x = digits[:1].clone().requires_grad_(True)
    small_model(x)[0, 7].backward()
    assert torch.allclose(attribution.saliency(small_model, digits[:1], 7)[0], x.grad[0, 0].abs())


def test_attributions_concentrate_on_the_digit(small_model, digits):
    ink = digits[:, 0] > 0.3
    frame = torch.ones(28, 28, dtype=torch.bool)
    frame[3:-3, 3:-3] = False
    for method in attribution.METHODS:
        options = {"samples": 8} if method == "smoothgrad" else {}
        maps = attribution.normalize_attribution(attribution.attribute(method, small_model, digits, None, **options))
        on_ink = maps[ink].mean().item()
        on_border = maps[:, frame].mean().item()
        assert on_ink > 2 * on_border, (method, on_ink, on_border)


def test_occlusion_of_empty_border_is_exactly_zero(small_model, digits):
    maps = attribution.occlusion(small_model, digits[:4], window=4, stride=2)
    # every window covering pixel (0, 0) lies in the blank corner: hiding blank pixels changes nothing
    assert (digits[:4, 0, :6, :6] == 0).all()
    assert (maps[:, 0, 0] == 0).all()


def test_smoothgrad_is_seeded(small_model, digits):
    one = attribution.smoothgrad(small_model, digits[:2], samples=5, seed=3)
    again = attribution.smoothgrad(small_model, digits[:2], samples=5, seed=3)
    other = attribution.smoothgrad(small_model, digits[:2], samples=5, seed=4)
    assert torch.equal(one, again) and not torch.equal(one, other)
    no_noise = attribution.smoothgrad(small_model, digits[:2], samples=2, noise=0.0)
    assert torch.allclose(no_noise, attribution.saliency(small_model, digits[:2]), atol=1e-6)


def test_gradcam_any_spatial_layer_and_raw_size(small_model, digits):
    for layer in ("Conv2D_1", "Max_Pool_1", "Conv2D_2", "Max_Pool_2", "Conv2D_3"):
        assert attribution.gradcam(small_model, digits[:2], layer=layer).shape == (2, 28, 28)
    raw = attribution.gradcam(small_model, digits[:2], layer="Conv2D_3", upsample=False)
    assert raw.shape == (2, 3, 3) and (raw >= 0).all()
    assert attribution.default_gradcam_layer(small_model) == "Conv2D_2"


def test_receptive_field_centres_match_the_network():
    """Where a layer pixel 'looks' in the input: the centre of its gradient's support."""
    torch.manual_seed(0)
    model = CNN(ModelSpec.from_lists(normalization=Normalization("none"))).eval()
    x = torch.rand(64, 1, 28, 28, requires_grad=True)
    for layer in ("Conv2D_1", "Max_Pool_1", "Conv2D_2", "Max_Pool_2", "Conv2D_3"):
        offset, jump = attribution.receptive_field(model, layer)
        out = model.activations(x, [layer], normalize=False)[layer]
        for i in (0, out.shape[-1] - 1):
            (grad,) = torch.autograd.grad(out[:, :, i, i].sum(), x, retain_graph=False)
            rows = np.flatnonzero(grad.abs().sum(dim=(0, 1, 3)).numpy() > 0)
            assert (rows.min() + rows.max()) / 2 == pytest.approx(offset + jump * i), (layer, i)
            out = model.activations(x, [layer], normalize=False)[layer]


def test_bad_requests_are_user_errors(small_model, digits):
    with pytest.raises(UserError, match="Conv2D_1, Max_Pool_1"):
        attribution.gradcam(small_model, digits[:1], layer="Dense_1")
    with pytest.raises(UserError, match="valid layers"):
        attribution.gradcam(small_model, digits[:1], layer="Conv7")
    with pytest.raises(UserError, match=r"0\.\.9"):
        attribution.saliency(small_model, digits[:1], 10)
    with pytest.raises(UserError, match="targets"):
        attribution.saliency(small_model, digits[:3], [1, 2])
    with pytest.raises(UserError, match="allowed"):
        attribution.attribute("lime", small_model, digits[:1])
    with pytest.raises(UserError, match="window"):
        attribution.occlusion(small_model, digits[:1], window=40)


def test_every_method_works_on_a_frozen_model(small_model, digits):
    expected = {method: attribution.attribute(method, small_model, digits[:2], None,
                                              **({"samples": 3} if method == "smoothgrad" else {}))
                for method in attribution.METHODS}
    small_model.requires_grad_(False)
    for method in attribution.METHODS:
        options = {"samples": 3} if method == "smoothgrad" else {}
        frozen = attribution.attribute(method, small_model, digits[:2], None, **options)
        assert torch.equal(frozen, expected[method]), method
    assert not any(parameter.requires_grad for parameter in small_model.parameters())
    assert attribution.ink_share(np.array([[1.0, -2.0], [3.0, 0.0]]), np.array([[255, 255], [0, 0]])) == 0.25
