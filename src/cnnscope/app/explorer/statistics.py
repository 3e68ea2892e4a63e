"""The explorer's test-set statistics: one batched pass (class probabilities and every map's mean
activation), and the views built on it (confusion matrix, confusable images, top images)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cnnscope.analysis.evaluation import Evaluation
from cnnscope.data.mnist import to_tensor
from cnnscope.nn.model import CNN, map_batches

STATS_BATCH = 250
TOP_COUNT = 9
CELL_EXAMPLES = 60  # test indices listed per confusion-matrix cell
CONFUSABLE_COUNT = 100


@dataclass
class TestStats:
    """One batched pass over the test set: class probabilities and each map's mean activation."""

    probabilities: np.ndarray  # N x classes
    map_means: dict[str, np.ndarray]  # layer -> N x maps (dense layers: node values)
    seconds: float


def compute_test_stats(model: CNN, images: np.ndarray, layers: list[str],
                       before_batch: Callable[[], None] | None = None) -> TestStats:
    """Class probabilities and the mean activation of every map of `layers`, for every image.

    Args:
        model: the network.
        images: N x 28 x 28 uint8 test images.
        layers: conv, pool or dense layers of `model` (dense layers: their node values).
        before_batch: called before each batch of STATS_BATCH images (the explorer lets a
            waiting OIP go first there).

    Returns:
        The `TestStats`, probabilities in double precision.
    """
    started = time.perf_counter()
    last = model.layer_names[-1]
    wanted = layers if last in layers else [*layers, last]

    def batch_stats(x: torch.Tensor) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if before_batch is not None:
            before_batch()
        outputs = model.activations(x, wanted)
        means = {name: _map_means(outputs[name]) for name in layers}
        return means, model.output_probabilities(outputs[last].double()).cpu().numpy()

    batches = map_batches(model, to_tensor(images), batch_stats, STATS_BATCH)
    probabilities = np.concatenate([batch[1] for batch in batches])
    means = {name: np.concatenate([batch[0][name] for batch in batches]) for name in layers}
    return TestStats(probabilities, means, time.perf_counter() - started)


def _map_means(output: torch.Tensor) -> np.ndarray:
    """N x C x H x W -> N x C means over each map; N x units stays as it is."""
    return (output.mean(dim=(2, 3)) if output.dim() == 4 else output).float().cpu().numpy()


def confusion_view(evaluation: Evaluation) -> dict:
    """The confusion matrix, with the test indices of each cell (most confident first)."""
    matrix = evaluation.confusion()
    predicted, labels = evaluation.predictions, evaluation.labels
    confidence = evaluation.probabilities[np.arange(len(labels)), predicted]
    cells = {}
    for true, guess in zip(*np.nonzero(matrix), strict=True):
        members = np.flatnonzero((labels == true) & (predicted == guess))
        members = members[np.argsort(-confidence[members], kind="stable")][:CELL_EXAMPLES]
        cells[f"{true},{guess}"] = members.tolist()
    return {"matrix": matrix.tolist(), "accuracy": evaluation.accuracy, "cells": cells, "cell_limit": CELL_EXAMPLES}


def confusable_view(evaluation: Evaluation) -> dict:
    """Misclassified test images (most confident first), then the closest correct calls."""
    probabilities, predicted, labels = evaluation.probabilities, evaluation.predictions, evaluation.labels
    wrong = np.array([m.index for m in evaluation.most_confident_mistakes(len(labels))], dtype=np.int64)
    ordered = np.sort(probabilities, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    right = np.flatnonzero(predicted == labels)
    close = right[np.argsort(margin[right], kind="stable")]
    picked = np.concatenate([wrong, close])[:CONFUSABLE_COUNT]
    runner_up = np.argsort(probabilities, axis=1)[:, -2]
    return {"examples": [
        {"index": int(i), "label": int(labels[i]), "predicted": int(predicted[i]),
         "runner_up": int(runner_up[i]), "confidence": round(float(probabilities[i, predicted[i]]), 4),
         "wrong": bool(predicted[i] != labels[i])}
        for i in picked
    ], "misclassified": evaluation.errors}


def top_view(stats: TestStats, labels: np.ndarray, layer: str, index: int) -> dict:
    """The TOP_COUNT test images whose mean activation of map `index` of `layer` is highest."""
    values = stats.map_means[layer][:, index]
    top = np.argsort(-values, kind="stable")[:TOP_COUNT]
    predicted = stats.probabilities.argmax(axis=1)
    return {"layer": layer, "map": index, "images": [
        {"index": int(i), "label": int(labels[i]), "predicted": int(predicted[i]),
         "value": round(float(values[i]), 5), "url": f"/api/test/{int(i)}/image.png"}
        for i in top
    ]}
