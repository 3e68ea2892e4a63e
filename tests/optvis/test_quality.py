"""The quality report on models whose answers are known by construction."""

from __future__ import annotations

import pytest
import torch

from cnnscope.data.mnist import to_tensor
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.examples import dataset_examples, target_values
from cnnscope.optvis.oip import find_oips, logit_objectives, map_objectives
from cnnscope.optvis.quality import (
    clipped_values,
    earlier_layers,
    majority_success,
    marker,
    natural_path,
    quality_report,
    spearman,
)


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([0, 0, 1, 2], [0, 0, 5, 9]) == pytest.approx(1.0)  # ties get average ranks
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_majority_success_for_a_map_and_a_logit_that_win_by_construction(small_model):
    with torch.no_grad():
        small_model.body.Conv2D_3.bias[5] += 100.0  # map 5 is the largest for every image
        small_model.body.Dense_2.bias[3] += 100.0  # and so is logit 3
    targets = [*map_objectives(small_model, "Conv2D_3", [5, 6]), *logit_objectives(small_model, [3, 4]),
               O.node("Conv2D_3", 5, 1, 1)]
    run = find_oips(small_model, targets, AscentSettings(steps=3))
    assert majority_success(small_model, run) == [True, False, True, False, True]
    assert earlier_layers(small_model, targets[0]) == ["Conv2D_1", "Conv2D_2"]
    assert earlier_layers(small_model, targets[2]) == ["Conv2D_1", "Conv2D_2", "Conv2D_3", "Dense_1"]


def test_an_oip_identical_to_its_top_image_has_natural_path_one(small_model, mnist):
    images = to_tensor(mnist.test_x[:400])
    targets = map_objectives(small_model, "Conv2D_3", [3, 11])
    run = find_oips(small_model, targets, AscentSettings(steps=20))
    values = target_values(small_model, targets, images, cache=False)
    top = dataset_examples(values, k=1).index["top"]
    noise_paths = natural_path(small_model, run, images, top)
    with torch.no_grad():
        run.images = small_model.normalize(images[top[:, 0]]).clone()
    paths = natural_path(small_model, run, images, top)
    for mine in paths:
        assert set(mine) == {"Conv2D_1", "Conv2D_2"}
        assert all(v == pytest.approx(1.0) for v in mine.values())
    assert all(v is None or v < 0.999 for mine in noise_paths for v in mine.values())
    outside, clipped = clipped_values(small_model, run)  # a real image: no pixel out of range
    assert outside.tolist() == [0.0, 0.0]
    assert torch.allclose(clipped, values.gather(1, top)[:, 0], rtol=1e-4, atol=1e-5)


def test_outside_share_and_clipped_value_by_hand(small_model):
    targets = map_objectives(small_model, "Conv2D_3", [11])
    run = find_oips(small_model, targets, AscentSettings(steps=2))
    white = (1 - 0.1307) / 0.3081
    image = torch.full((1, 1, 28, 28), white)
    image[..., :14, :] = white + 1.0  # the top half is brighter than white
    run.images = image
    outside, clipped = clipped_values(small_model, run)
    assert float(outside[0]) == pytest.approx(0.5)
    expected = O.objective_values(targets[0], small_model, torch.full((1, 1, 28, 28), white))
    assert float(clipped[0]) == pytest.approx(float(expected[0]), rel=1e-5)


def test_report_rows_summary_and_marker(small_model, mnist):
    images = to_tensor(mnist.test_x[:300])
    targets = map_objectives(small_model, "Conv2D_3", [0, 3, 11])
    run = find_oips(small_model, targets, AscentSettings(steps=30), diverse=2)
    report = quality_report(run, small_model, images, target_values(small_model, targets, images, cache=False))
    rows, summary = report["targets"], report["summary"]
    assert len(rows) == 3 and summary["targets"] == 3
    assert {"ratio", "majority", "natural_path_mean", "outside", "clipped_ratio", "start_similarity", "spread"} <= set(rows[2])
    assert rows[2]["spread"] == pytest.approx(1 - rows[2]["start_similarity"], abs=1e-4)
    assert summary["median_outside"] is not None and 0 <= summary["median_outside"] <= 1
    assert marker({"ratio": 1.4, "majority": True, "natural_path_mean": 0.62, "outside": 0.12}) == "x1.4 M np.62 o12%"
