"""Diversity (Olah et al. 2017): Gram-matrix similarity, groups, and K starts of one map pushed apart."""

from __future__ import annotations

import pytest
import torch

from cnnscope.errors import UserError
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.gallery import start_similarity
from cnnscope.optvis.oip import default_diversity_layer, find_oips, logit_objectives, map_objectives
from cnnscope.optvis.regularizers import Diversity, gram_similarity


def test_gram_similarity_by_hand():
    a = torch.zeros(3, 2, 2, 2)
    a[0, 0] = 1.0  # only map 0 fires: Gram [[1, 0], [0, 0]]
    a[1, 0] = 3.0  # the same pattern, stronger: the same Gram direction
    a[2, 1] = 1.0  # only map 1: an orthogonal Gram matrix
    similarity = gram_similarity(a)
    assert torch.allclose(similarity, torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    vectors = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert float(gram_similarity(vectors)[0, 1]) == pytest.approx(2 ** -0.5)


def test_diversity_penalises_only_images_of_the_same_group(small_model):
    images = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    images[1] = images[0]
    penalty = Diversity(small_model, "Conv2D_2", torch.tensor([0, 0, 1, 2]), weight=2.0)(images)
    penalty = penalty.detach()
    assert float(penalty[0]) == pytest.approx(2.0, rel=1e-5) == float(penalty[1])  # twins: similarity 1
    assert float(penalty[2]) == 0.0 == float(penalty[3])  # alone in their groups
    narrowed = Diversity(small_model, "Conv2D_2", torch.tensor([0, 0, 1, 2])).select(torch.tensor([0, 2]))
    assert narrowed.groups.tolist() == [0, 1] and float(narrowed(images[[0, 2]]).detach().abs().sum()) == 0.0


def _mean_pair_similarity(images, model) -> float:
    with torch.no_grad():
        similarity = gram_similarity(model.activations(images, ["Conv2D_2"], normalize=False)["Conv2D_2"])
    k = images.shape[0]
    return float((similarity.sum() - similarity.diagonal().sum()) / (k * (k - 1)))


def test_diverse_starts_of_one_map_are_less_alike(small_model):
    targets = map_objectives(small_model, "Conv2D_3", [3, 11])
    settings = AscentSettings(steps=60)
    plain = find_oips(small_model, targets, settings, diverse=4, diversity_weight=0.0, seed=2)
    diverse = find_oips(small_model, targets, settings, diverse=4, diversity_weight=4.0, seed=2)
    assert plain.starts.images.shape == (4, 2, 1, 28, 28)
    for target in range(2):  # the Gram matrices the term compares, and the pictures themselves
        gram = [_mean_pair_similarity(run.starts.images[:, target], small_model) for run in (plain, diverse)]
        assert gram[1] < gram[0] - 0.005, gram  # Gram matrices of ReLU maps are alike (~0.95) to begin with
    alike, apart = start_similarity(plain), start_similarity(diverse)
    assert bool((apart < alike).all()) and float(apart.mean()) < float(alike.mean()) - 0.02, (alike, apart)
    assert bool((diverse.final > diverse.values[0]).all())  # still OIPs of their maps
    assert default_diversity_layer(small_model, targets) == "Conv2D_2"
    assert default_diversity_layer(small_model, logit_objectives(small_model, [1])) == "Conv2D_3"
    with pytest.raises(UserError, match="diverse must be"):
        find_oips(small_model, targets, settings, diverse=1)
    with pytest.raises(UserError, match="disagree"):
        find_oips(small_model, targets, settings, diverse=3, restarts=2)
