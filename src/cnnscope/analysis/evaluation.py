"""How good is a model: accuracy, per-class accuracy, confusion matrix, confident mistakes.

`evaluate(model, images, labels)` returns an `Evaluation` (numbers only);
`predict_probabilities` is the one batched prediction of the library. The pictures are drawn
by `cnnscope.figures.evaluation`; the `cnnscope evaluate` command writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cnnscope.data.images import DigitImage, to_batch
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.nn.model import map_batches

EVAL_BATCH = 100  # fastest on a CPU: 3x the images/s of one 10000-image batch (benchmarks/train_speed.py)


@dataclass(frozen=True)
class Mistake:
    index: int  # index in the evaluated image set
    true: int
    predicted: int
    probability: float  # the model's probability for its (wrong) prediction
    true_probability: float

    def to_dict(self) -> dict:
        return {"index": self.index, "true": self.true, "predicted": self.predicted,
                "probability": round(self.probability, 6), "true_probability": round(self.true_probability, 6)}


@dataclass(frozen=True)
class Evaluation:
    """Probabilities of a model for a labelled image set, and what follows from them."""

    probabilities: np.ndarray  # N x classes, float
    labels: np.ndarray  # N, int
    set_name: str = "test"

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def num_classes(self) -> int:
        return self.probabilities.shape[1]

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean())

    @property
    def errors(self) -> int:
        return int((self.predictions != self.labels).sum())

    def confusion(self) -> np.ndarray:
        """classes x classes counts: row = true class, column = predicted class."""
        matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predictions), 1)
        return matrix

    def per_class_accuracy(self) -> np.ndarray:
        matrix = self.confusion()
        totals = matrix.sum(axis=1)
        return np.divide(np.diag(matrix), totals, out=np.zeros(len(totals)), where=totals > 0)

    def most_confident_mistakes(self, count: int = 24) -> list[Mistake]:
        """Wrong predictions, most confident first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        confidence = self.probabilities[wrong, self.predictions[wrong]]
        order = wrong[np.argsort(-confidence, kind="stable")][:count]
        return [
            Mistake(int(i), int(self.labels[i]), int(self.predictions[i]),
                    float(self.probabilities[i, self.predictions[i]]), float(self.probabilities[i, self.labels[i]]))
            for i in order
        ]

    def to_dict(self, mistakes: int = 24) -> dict:
        return {
            "set": self.set_name,
            "images": int(len(self.labels)),
            "accuracy": self.accuracy,
            "errors": self.errors,
            "per_class_accuracy": {str(k): float(v) for k, v in enumerate(self.per_class_accuracy())},
            "confusion": self.confusion().tolist(),
            "most_confident_mistakes": [m.to_dict() for m in self.most_confident_mistakes(mistakes)],
        }


def predict_probabilities(model, images, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Class probabilities of `model` for a set of images, in batches.

    Args:
        model: a `CNN` (any module with `probabilities(x)`).
        images: uint8 N x 28 x 28 (or N x 1 x 28 x 28) images, or a float tensor in [0, 1].
        batch_size: images per forward pass.

    Returns:
        N x classes float64 array (the model's float32 probabilities, widened); 0 x classes
        for no images.
    """
    x = images if isinstance(images, torch.Tensor) else to_tensor(np.asarray(images))
    if x.dim() == 3:
        x = x.unsqueeze(1)
    chunks = map_batches(model, x, lambda batch: model.probabilities(batch).double().cpu(), batch_size)
    if not chunks:
        return np.zeros((0, model.num_classes))
    return torch.cat(chunks).numpy()


def evaluate(model, images, labels, set_name: str = "test", batch_size: int = EVAL_BATCH) -> Evaluation:
    """Evaluate `model` on uint8 images (N x 28 x 28) with integer labels."""
    labels = np.asarray(labels).astype(np.int64)
    if not len(images):
        raise UserError("no images to evaluate")
    if len(labels) != len(images):
        raise UserError(f"{len(images)} images but {len(labels)} labels")
    return Evaluation(predict_probabilities(model, images, batch_size), labels, set_name)


def predict_images(model, images: Sequence[DigitImage]) -> np.ndarray:
    """Class probabilities for a few `DigitImage`s, from one forward pass.

    Args:
        model: a `CNN`.
        images: the digits to classify.

    Returns:
        N x classes float64 array.
    """
    return predict_probabilities(model, to_batch(images), batch_size=max(1, len(images)))
