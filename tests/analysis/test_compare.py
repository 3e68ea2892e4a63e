"""CKA and unit matching (analysis/compare) on the small real model and its permuted copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnscope.analysis import compare as C
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import ModelSpec, Normalization
from helpers import permute_conv2d_3


@pytest.fixture(scope="module")
def test_images(mnist):
    return to_tensor(mnist.test_x[:600])


def permuted_copy(model: CNN, permutation: torch.Tensor) -> CNN:
    """A copy with Conv2D_3's maps reordered (and Dense_1's columns), outputs unchanged."""
    copy = CNN(model.spec)
    copy.load_state_dict(model.state_dict())
    return permute_conv2d_3(copy, permutation).eval()


def centred_gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s definition, written independently: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH))."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, g = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.trace(k @ g) / np.sqrt(np.trace(k @ k) * np.trace(g @ g)))


def test_linear_cka_matches_the_centred_gram_definition_and_its_invariances():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, generator=generator, dtype=torch.float64)
    y = x[:, :8] @ torch.randn(8, 5, generator=generator, dtype=torch.float64) + 0.5 * torch.randn(40, 5, generator=generator, dtype=torch.float64)
    value = C.linear_cka(x, y)
    assert value == pytest.approx(centred_gram_cka(x.numpy(), y.numpy()), abs=1e-12)
    wide = torch.randn(40, 100, generator=generator, dtype=torch.float64)  # more features than examples
    assert C.linear_cka(wide, y) == pytest.approx(centred_gram_cka(wide.numpy(), y.numpy()), abs=1e-12)
    permutation = torch.randperm(12, generator=generator)
    for unbiased in (False, True):
        reference = C.linear_cka(x, y, unbiased=unbiased)
        assert C.linear_cka(x[:, permutation], y, unbiased=unbiased) == pytest.approx(reference, abs=1e-12)
        assert C.linear_cka(3.7 * x, 0.01 * y, unbiased=unbiased) == pytest.approx(reference, abs=1e-12)
        assert C.linear_cka(x, x, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    # the unbiased HSIC of linear kernels does not see a constant shift of the features
    k, g = x @ x.T, y @ y.T
    shifted = (x + 5.0) @ (x + 5.0).T
    assert C.unbiased_hsic(shifted, g) == pytest.approx(C.unbiased_hsic(k, g), rel=1e-9)


def test_a_model_with_itself_has_cka_one_in_every_layer(small_model, test_images):
    result = C.compare_models([small_model, small_model], test_images, batch_size=200)
    same = result.same_layer_cka()
    assert list(same) == small_model.layer_names
    assert all(value == pytest.approx(1.0, abs=1e-9) for value in same.values())
    for name, match in result.pair().matches.items():
        live = ~match.dead_a[match.pairs[:, 0]]
        assert (match.pairs[live, 0] == match.pairs[live, 1]).all(), name
        assert np.allclose(match.matched[live], 1.0, atol=1e-9), name


def perturbed_copy(model: CNN, scale: float = 0.5, seed: int = 0) -> CNN:
    """A copy with every weight multiplied by (1 + scale * noise): related but different maps."""
    copy = CNN(model.spec)
    copy.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.mul_(1 + scale * torch.randn(parameter.shape, generator=generator))
    return copy.eval()


def test_the_streaming_estimate_agrees_with_the_full_batch_value(small_model, test_images):
    """Minibatches of 150 of 600 images vs the exact value on all 600 at once. The minibatch
    estimate averages four unbiased per-batch HSICs; the biased full-batch CKA differs from it by
    its O(1/n) bias and the sampling noise of the ratio. Tolerance 0.01 (measured on two trained
    runs: <= 0.003 for 2000 images in batches of 250); with one batch of all images the estimate
    is the unbiased full-batch value exactly."""
    other = perturbed_copy(small_model)
    streaming = C.compare_models([small_model, other], test_images, batch_size=150).same_layer_cka()
    whole = C.compare_models([small_model, other], test_images, batch_size=600).same_layer_cka()
    with torch.no_grad():
        acts_a = small_model.activations(test_images, small_model.layer_names)
        acts_b = other.activations(test_images, other.layer_names)
    assert min(streaming.values()) < 0.99  # really different models
    for name in small_model.layer_names:
        assert streaming[name] == pytest.approx(C.linear_cka(acts_a[name], acts_b[name]), abs=0.01), name
        assert whole[name] == pytest.approx(C.linear_cka(acts_a[name], acts_b[name], unbiased=True), abs=1e-6), name


def test_matching_recovers_a_permutation_of_conv2d_3_exactly(small_model, test_images):
    permutation = torch.randperm(128, generator=torch.Generator().manual_seed(3))
    other = permuted_copy(small_model, permutation)
    with torch.no_grad():
        assert torch.allclose(small_model(test_images[:50]), other(test_images[:50]), atol=1e-5)
    result = C.compare_models([small_model, other], test_images, batch_size=300, match_layers=["Conv2D_3"])
    match = result.pair().matches["Conv2D_3"]
    # unit u of the copy is map permutation[u] of the original
    found = dict(zip(match.pairs[:, 1].tolist(), match.pairs[:, 0].tolist(), strict=True))
    live = [u for u in range(128) if not match.dead_b[u]]
    assert len(live) >= 80
    assert all(found[u] == int(permutation[u]) for u in live)
    assert match.share_with_partner == pytest.approx(len(live) / 128)
    assert result.same_layer_cka()["Conv2D_3"] == pytest.approx(1.0, abs=1e-9)  # CKA ignores the order
    assert result.same_layer_cka()["Dense_1"] == pytest.approx(1.0, abs=1e-9)


def test_models_of_different_layouts_compare_and_a_missing_layer_is_one_line(small_model, test_images):
    spec = ModelSpec.from_lists(conv=((16, (3, 3), "relu"), (32, (3, 3), "relu")), pools=((2, 2),),
                                normalization=Normalization("global", 0.1307, 0.3081))
    small = CNN(spec).eval()
    result = C.compare_models([small_model, small], test_images[:200], names=["big", "small"])
    assert result.pair().cka.shape == (8, 6)
    assert result.match_layers == ["Conv2D_1", "Conv2D_2", "Dense_1", "Dense_2"]
    with pytest.raises(UserError) as error:
        C.compare_models([small_model, small], test_images[:200], names=["big", "small"], match_layers=["Conv2D_3"])
    message = str(error.value)
    assert "\n" not in message and "only in big, not in small" in message and error.value.parameter == "layers"
    with pytest.raises(UserError, match="at least two models"):
        C.compare_models([small_model], test_images)


def test_json_and_pairwise_tables_of_three_models(small_model, test_images):
    models = [small_model, perturbed_copy(small_model, seed=1), perturbed_copy(small_model, seed=2)]
    result = C.compare_models(models, test_images[:300], names=["a", "b", "c"])
    tables = C.pairwise_tables(result)
    cka = tables["cka"]["Conv2D_3"]
    assert cka.shape == (3, 3) and np.allclose(np.diag(cka), 1) and np.allclose(cka, cka.T)
    assert cka[0, 1] == pytest.approx(result.same_layer_cka(0, 1)["Conv2D_3"])
    body = C.comparison_to_json(result)
    assert len(body["pairs"]) == 3 and "tables" in body
    summary = body["pairs"][0]["matches"]["Conv2D_3"]
    assert summary["median"] == pytest.approx(float(np.median(result.pair().matches["Conv2D_3"].matched)), abs=1e-4)
