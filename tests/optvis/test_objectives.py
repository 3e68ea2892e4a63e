"""Objectives: one value per batch element, the algebra, per-element batching, validation."""

from __future__ import annotations

import pytest
import torch

from cnnscope.app.parsing import parse_layer_mix
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.optvis import objectives as O


@pytest.fixture(scope="module")
def batch(mnist):
    return to_tensor(mnist.test_x[:6])


def acts_for(model, x, layers):
    with torch.no_grad():
        return model.activations(x, layers)


def test_channel_node_layer_values(small_model, batch):
    acts = acts_for(small_model, batch, ["Conv2D_3", "Dense_1"])
    conv = acts["Conv2D_3"]
    assert torch.allclose(O.channel("Conv2D_3", 5)(acts), conv[:, 5].mean(dim=(1, 2)))
    assert torch.equal(O.node("Conv2D_3", 5, 0, 2)(acts), conv[:, 5, 0, 2])
    assert torch.equal(O.node("Conv2D_3", 5)(acts), conv[:, 5, 1, 1])  # default: the centre
    assert torch.equal(O.node("Dense_1", 7)(acts), acts["Dense_1"][:, 7])
    assert torch.equal(O.channel("Dense_1", 7)(acts), acts["Dense_1"][:, 7])
    assert torch.allclose(O.layer("Conv2D_3")(acts), conv.flatten(1).mean(dim=1))
    assert O.channel("Conv2D_3", 5)(acts).shape == (6,)


def test_logit_is_the_last_layer_before_softmax(small_model, batch):
    objective = O.logit(3)
    values = O.objective_values(objective, small_model, batch, normalize=True)
    with torch.no_grad():
        logits = small_model(batch)
    assert torch.allclose(values, logits[:, 3])
    assert objective.layers == (O.LOGITS,)


def test_algebra_matches_arithmetic(small_model, batch):
    acts = acts_for(small_model, batch, ["Conv2D_2", "Conv2D_3"])
    a, b = O.channel("Conv2D_3", 1), O.channel("Conv2D_2", 4)
    va, vb = a(acts), b(acts)
    assert torch.allclose((a + b)(acts), va + vb)
    assert torch.allclose((a - b)(acts), va - vb)
    assert torch.allclose((2.0 * a)(acts), 2 * va)
    assert torch.allclose((a * 3.0)(acts), 3 * va)
    assert torch.allclose((-a)(acts), -va)
    assert torch.allclose((a / 4.0)(acts), va / 4)
    assert torch.allclose(sum([a, b])(acts), va + vb)
    assert torch.allclose(O.weighted([(a, 0.5), (b, 2.0)])(acts), 0.5 * va + 2.0 * vb)
    assert set((a + b).layers) == {"Conv2D_3", "Conv2D_2"}


def test_per_element_fast_and_general_paths(small_model, batch):
    acts = acts_for(small_model, batch, ["Conv2D_2", "Conv2D_3"])
    maps = [3, 0, 7, 7, 120, 64]
    fast = O.per_element([O.channel("Conv2D_3", m) for m in maps])
    expected = torch.stack([acts["Conv2D_3"][i, m].mean() for i, m in enumerate(maps)])
    assert torch.allclose(fast(acts), expected)
    mixed = O.per_element([O.channel("Conv2D_3", 3), O.node("Conv2D_3", 0, 2, 2), O.layer("Conv2D_2"),
                           O.channel("Conv2D_2", 1), 2.0 * O.channel("Conv2D_3", 9), O.channel("Conv2D_3", 9)])
    general = mixed(acts)
    assert general[1] == acts["Conv2D_3"][1, 0, 2, 2]
    assert torch.allclose(general[2], acts["Conv2D_2"][2].mean())
    assert torch.allclose(general[4], 2 * acts["Conv2D_3"][4, 9].mean())
    # narrowing to a subset of the batch keeps the pairing of image and objective
    sub = fast.select(torch.tensor([1, 4]))
    sub_acts = {k: v[[1, 4]] for k, v in acts.items()}
    assert torch.allclose(sub(sub_acts), expected[[1, 4]])
    with pytest.raises(ValueError):
        fast({k: v[:2] for k, v in acts.items()})


@pytest.mark.parametrize("objective, message", [
    (O.channel("Conv2D_9", 0), "valid layers: Conv2D_1"),
    (O.channel("Conv2D_3", 128), "0..127"),
    (O.channel("Conv2D_3", -1), "0..127"),
    (O.node("Conv2D_3", 3, 3, 0), "valid y is 0..2"),
    (O.node("Conv2D_2", 3, 0, 11), "valid x is 0..10"),
    (O.node("Dense_1", 100), "0..99"),
    (O.node("Dense_1", 1, 0, 0), "without y, x"),
    (O.logit(10), "valid logits are 0..9"),
    (parse_layer_mix("Conv2D_2,Nope:1"), "unknown layer 'Nope'"),
])
def test_validate_names_the_problem(small_model, objective, message):
    with pytest.raises(UserError, match=message):
        O.validate(objective, small_model)


def test_validate_accepts_good_objectives(small_model):
    for objective in (O.channel("Conv2D_3", 127), O.node("Conv2D_3", 0, 2, 2), O.logit(9), O.layer("Dense_1"),
                      parse_layer_mix("Conv2D_1:1,Conv2D_2:2")):
        O.validate(objective, small_model)
