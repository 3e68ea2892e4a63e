"""analysis.patterns: AUC / SMD measures, common points, separating-map ranking, confusable images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cnnscope.analysis import patterns
from cnnscope.app.parsing import parse_digits
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.nn.model import activations


def test_auc_by_hand_and_against_sklearn():
    a = np.array([[1.0], [2.0], [3.0]])
    b = np.array([[0.0], [2.0]])
    # pairs a > b: (1,0) (2,0) (3,0) (3,2); tie (2,2) counts half -> 4.5 / 6
    assert patterns.auc_scores(a, b)[0] == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=(40, 6)).astype(float)  # many ties
    b = rng.integers(1, 6, size=(30, 6)).astype(float)
    labels = np.r_[np.ones(40), np.zeros(30)]
    expected = [roc_auc_score(labels, np.r_[a[:, c], b[:, c]]) for c in range(6)]
    assert np.allclose(patterns.auc_scores(a, b), expected)


def test_standardized_mean_difference():
    a = np.array([[1.0, 5.0], [3.0, 5.0]])
    b = np.array([[0.0, 5.0], [2.0, 5.0]])
    smd = patterns.standardized_mean_difference(a, b)
    # means differ by 1, both sample variances are 2 -> pooled std sqrt(2); constant column -> 0
    assert smd[0] == pytest.approx(1 / np.sqrt(2)) and smd[1] == 0.0


def test_active_nodes_are_relative_to_each_images_peak():
    values = np.array([[[[0.0, 1.0], [3.0, 10.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    active = patterns.active_nodes(values, level=0.3)
    assert active[0, 0].tolist() == [[False, False], [True, True]]
    assert not active[1].any()  # an all-zero image has no active nodes


def test_common_and_distinctive_points():
    a = np.zeros((10, 2, 1, 2))
    b = np.zeros((10, 2, 1, 2))
    a[:, 0, 0, 0] = 1.0  # node (0,0,0): active in all "a" images ...
    b[:2, 0, 0, 0] = 1.0  # ... and in 20% of "b" images -> distinctive for a
    a[:, 1, 0, 1] = 1.0  # node (1,0,1): active in all images of both -> common, shared
    b[:, 1, 0, 1] = 1.0
    b[:, 0, 0, 1] = 0.2  # below 0.3 x peak -> never active
    result = patterns.compare_activations(a, b, "toy", (4, 9), level=0.3, min_share=0.8)
    assert result.common_points(0).sum() == 2
    assert np.argwhere(result.distinctive_points(0)).tolist() == [[0, 0, 0]]
    assert np.argwhere(result.shared_points(0)).tolist() == [[1, 0, 1]]
    assert np.argwhere(result.common_points(1)).tolist() == [[1, 0, 1]]
    assert result.describe()["common_points"]["4"]["distinctive"] == [[0, 0, 0]]


def test_bad_options_are_user_errors():
    for text in ("4,4", "4,10", "a,9", "4", "4,9,1", "-1,3"):
        with pytest.raises(UserError):
            parse_digits(text)
    assert parse_digits("4, 9") == (4, 9)
    with pytest.raises(UserError, match="measure"):
        patterns.check_options("gini", 0.3, 0.8)
    with pytest.raises(UserError, match="share"):
        patterns.check_options("auc", 0.3, 0.4)
    with pytest.raises(UserError, match="only"):
        patterns.class_indices(np.array([4, 4, 9]), 4, 3)


def test_ranking_picks_maps_that_really_differ(four_vs_nine):
    model, a, b, _, _, results = four_vs_nine
    result = results["Conv2D_3"]
    # the summaries are the per-image map means of the real activations
    acts_a = activations(model, a, "Conv2D_3")["Conv2D_3"].numpy()
    assert np.allclose(result.summaries[0], acts_a.mean(axis=(2, 3)), atol=1e-5)
    ranking = result.ranking()
    separation = result.separation()
    assert (np.diff(separation[ranking]) <= 1e-12).all()  # best first
    labels = np.r_[np.ones(len(a)), np.zeros(len(b))]
    for index in ranking[:3]:
        auc = roc_auc_score(labels, np.r_[result.summaries[0][:, index], result.summaries[1][:, index]])
        assert result.auc[index] == pytest.approx(auc)
        assert max(auc, 1 - auc) > 0.85  # the best maps separate 4s from 9s well
    assert separation[ranking[0]] > np.median(separation) + 0.2
    top = result.top(5)
    assert [row["map"] for row in top] == ranking[:5].tolist()
    for row in top:
        higher = 4 if row["mean_4"] > row["mean_9"] else 9
        assert row["higher_for"] == higher


def test_smd_ranking_agrees_in_sign(four_vs_nine):
    _, _, _, _, _, results = four_vs_nine
    result = results["Conv2D_3"]
    result.measure = "smd"
    ranking = result.ranking()
    assert np.abs(result.smd[ranking[0]]) == pytest.approx(np.abs(result.smd).max())
    strong = np.abs(result.smd) > 1.0
    assert ((result.smd[strong] > 0) == (result.auc[strong] > 0.5)).all()
    result.measure = "auc"


def test_dense_layer_patterns(four_vs_nine):
    _, _, _, _, _, results = four_vs_nine
    result = results["Dense_1"]
    assert result.is_dense and result.means[0].shape == (100,)
    best = result.top(1)[0]
    assert "node" in best and max(best["auc"], 1 - best["auc"]) > 0.9
    assert all(isinstance(n, int) for n in result.describe()["common_points"]["4"]["common"])


def test_most_confusable_images(four_vs_nine):
    model, a, _, _, _, _ = four_vs_nine
    items = patterns.most_confusable(model, a, other=9, count=5)
    probs = [item.probability_other for item in items]
    assert probs == sorted(probs, reverse=True)
    with torch.no_grad():
        p9 = model.probabilities(a)[:, 9].numpy()
    assert probs[0] == pytest.approx(p9.max(), rel=1e-5)
    assert items[0].position == int(np.argmax(p9))


def test_pattern_layers_are_the_last_conv_and_the_first_hidden_dense_layer(small_model):
    assert patterns.pattern_layers(small_model) == ["Conv2D_3", "Dense_1"]


def test_pick_examples_clear_and_unclear(small_model, mnist):
    examples = patterns.pick_examples(small_model, mnist)
    assert examples["clear_a"].label == 4 and examples["unclear_a"].label == 4 and examples["clear_b"].label == 9
    probabilities = {key: small_model.probabilities(to_tensor(image.pixels[None])).detach()[0]
                     for key, image in examples.items()}
    assert probabilities["unclear_a"].argmax() == 4 and probabilities["unclear_a"][9] > probabilities["clear_a"][9]
