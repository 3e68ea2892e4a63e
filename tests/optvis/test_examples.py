"""Dataset examples: ranks by hand, one batched pass that agrees with dataset_max, cached on disk."""

from __future__ import annotations

import torch

from cnnscope.data.mnist import cnnscope_home, to_tensor
from cnnscope.optvis.examples import dataset_examples, target_values
from cnnscope.optvis.oip import dataset_max, map_objectives


def test_ranks_by_hand():
    values = torch.tensor([[0.0, 5.0, 2.0, 9.0, 1.0], [3.0, 3.0, -1.0, 0.0, 7.0]])
    examples = dataset_examples(values, k=2, spread=True)
    assert examples.index["top"].tolist() == [[3, 1], [4, 0]]
    assert examples.value["top"].tolist() == [[9.0, 5.0], [7.0, 3.0]]
    assert examples.index["middle"].tolist() == [[1, 2], [0, 1]]
    assert examples.index["bottom"].tolist() == [[4, 0], [3, 2]]
    assert examples.to_json(0)["top"] == [{"index": 3, "value": 9.0}, {"index": 1, "value": 5.0}]
    assert set(dataset_examples(values, k=9).index) == {"top"}
    assert dataset_examples(values, k=9).index["top"].shape == (2, 5)  # at most all images


def test_target_values_match_dataset_max_and_are_cached(small_model, mnist):
    images = to_tensor(mnist.test_x[:300])
    targets = map_objectives(small_model, "Conv2D_3", [0, 3, 11])
    before = set((cnnscope_home() / "examples").glob("*.npy")) if (cnnscope_home() / "examples").exists() else set()
    values = target_values(small_model, targets, images, batch_size=128)
    written = set((cnnscope_home() / "examples").glob("*.npy")) - before
    assert values.shape == (3, 300) and len(written) == 1
    best, where = dataset_max(small_model, targets, images)
    assert torch.allclose(values.max(dim=1).values, best) and torch.equal(values.argmax(dim=1), where)
    again = target_values(small_model, targets, images)
    assert torch.equal(again, values)
    assert set((cnnscope_home() / "examples").glob("*.npy")) - before == written  # read back, not recomputed
    other = target_values(small_model, targets[:2], images)
    assert torch.equal(other, values[:2])
