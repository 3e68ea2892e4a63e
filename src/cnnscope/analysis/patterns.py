"""Class patterns: what the images of two digits have in common at a layer, and what differs.

The seed articles (V and VI) compared the Conv2D_3 maps and the Dense_1 nodes of three "4"s
and three "9"s by eye and circled the "common points". Here the same is done over many
images and with numbers:

- the mean activation per class (`ClassPatterns.means`);
- the *common points*: nodes that are active in at least `min_share` of a class's images,
  where "active" means at least `level` times the layer's largest value for that image (what
  stands out in a per-image picture of the grid, like the articles' circled points);
  *distinctive* common points are active in at most `1 - min_share` of the other class's
  images (the articles' red circles); the other common points are shared (their yellow ones);
- the maps (or dense nodes) that separate the two classes best, ranked by a stated measure
  over each image's per-map mean activation: the ROC AUC (the probability that a random image
  of the first digit gives the map a higher value than a random image of the second; ranked by
  max(AUC, 1 - AUC)) or the standardised mean difference (Cohen's d with the pooled standard
  deviation; ranked by |d|);
- the most confusable images of a class: those to which the network gives the highest
  probability for the other digit (the articles' "unclear 4s"), and `pick_examples`, a clear
  and an unclear image of one digit and a clear one of the other.

Algorithms only; the pictures are drawn by `cnnscope.figures.patterns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cnnscope.analysis.evaluation import predict_probabilities
from cnnscope.data.images import DigitImage, dataset_images
from cnnscope.errors import UserError, check_choice
from cnnscope.nn.model import CNN, map_batches

MEASURES = ("auc", "smd")
DEFAULT_LEVEL = 0.3
DEFAULT_SHARE = 0.8
DEFAULT_COUNT = 200
SHARE_TOLERANCE = 1e-9  # 2 of 10 images is a share of 0.2 although 1 - 0.8 = 0.19999999999999996


def pattern_layers(model: CNN) -> list[str]:
    """The articles' choice of layers to compare: the last conv layer and the first dense layer
    (if it is not the output layer)."""
    return model.layers_of_kind("conv")[-1:] + model.layers_of_kind("dense")[:-1][:1]


def class_indices(labels: np.ndarray, digit: int, count: int, what: str = "images") -> np.ndarray:
    """The first `count` positions of `digit` in `labels` (in data-set order)."""
    if count < 1:
        raise UserError(f"count must be >= 1, got {count}")
    positions = np.flatnonzero(np.asarray(labels) == digit)
    if len(positions) < count:
        raise UserError(f"asked for {count} {what} of digit {digit} but there are only {len(positions)}")
    return positions[:count]


# ---- measures ----------------------------------------------------------------------------------


def map_summaries(activations) -> np.ndarray:
    """N x C x H x W maps -> N x C per-map mean activation; N x C dense nodes stay as they are."""
    values = _numpy(activations)
    return values.mean(axis=(2, 3)) if values.ndim == 4 else values


def auc_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: P(a > b) + P(a == b) / 2 for a random row of `a` and of `b` (ROC AUC)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(f"need two N x C arrays with the same C, got {a.shape} and {b.shape}")
    scores = np.empty(a.shape[1])
    for column in range(a.shape[1]):
        sorted_b = np.sort(b[:, column])
        below = np.searchsorted(sorted_b, a[:, column], side="left")
        not_above = np.searchsorted(sorted_b, a[:, column], side="right")
        scores[column] = (below + not_above).sum() / (2.0 * len(a) * len(b))
    return scores


def standardized_mean_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: (mean_a - mean_b) / pooled std (Cohen's d); 0 where both are constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ddof = 1 if min(len(a), len(b)) > 1 else 0
    pooled = np.sqrt((a.var(axis=0, ddof=ddof) + b.var(axis=0, ddof=ddof)) / 2.0)
    difference = a.mean(axis=0) - b.mean(axis=0)
    return np.divide(difference, pooled, out=np.zeros_like(difference), where=pooled > 0)


def active_nodes(activations, level: float = DEFAULT_LEVEL) -> np.ndarray:
    """Boolean, same shape: value >= `level` x the layer's largest value for that image (and > 0)."""
    values = _numpy(activations)
    peak = values.reshape(len(values), -1).max(axis=1).reshape((-1,) + (1,) * (values.ndim - 1))
    return (values >= level * peak) & (values > 0)


# ---- the comparison ----------------------------------------------------------------------------


@dataclass
class ClassPatterns:
    """The comparison of two digits at one layer (arrays are C x H x W for maps, C for nodes)."""

    layer: str
    digits: tuple[int, int]
    counts: tuple[int, int]
    means: tuple[np.ndarray, np.ndarray]
    active_share: tuple[np.ndarray, np.ndarray]  # share of each class's images with the node active
    summaries: tuple[np.ndarray, np.ndarray]  # N x C per-image map means (dense: node values)
    auc: np.ndarray  # C; > 0.5: the map is higher for digits[0]
    smd: np.ndarray  # C; > 0: the map is higher for digits[0]
    measure: str = "auc"
    level: float = DEFAULT_LEVEL
    min_share: float = DEFAULT_SHARE

    @property
    def is_dense(self) -> bool:
        return self.means[0].ndim == 1

    @property
    def unit(self) -> str:
        return "node" if self.is_dense else "map"

    def separation(self) -> np.ndarray:
        """The ranking score per map: max(AUC, 1 - AUC) or |SMD|."""
        return np.maximum(self.auc, 1.0 - self.auc) if self.measure == "auc" else np.abs(self.smd)

    def ranking(self) -> np.ndarray:
        """Map (node) numbers, best separating first (ties: lower number first)."""
        return np.argsort(-self.separation(), kind="stable")

    def common_points(self, which: int) -> np.ndarray:
        """Boolean: nodes active in at least `min_share` of class `which`'s images (0 or 1)."""
        return self.active_share[which] >= self.min_share - SHARE_TOLERANCE

    def distinctive_points(self, which: int) -> np.ndarray:
        """Common points of class `which` that are active in at most 1 - min_share of the other's."""
        return self.common_points(which) & (self.active_share[1 - which] <= 1.0 - self.min_share + SHARE_TOLERANCE)

    def shared_points(self, which: int) -> np.ndarray:
        """Common points of class `which` that are not distinctive."""
        return self.common_points(which) & ~self.distinctive_points(which)

    def top(self, n: int = 16) -> list[dict]:
        """The `n` best separating maps with their numbers (for the list and the JSON)."""
        rows = []
        for rank, index in enumerate(self.ranking()[:n], start=1):
            mean_a, mean_b = (float(s[:, index].mean()) for s in self.summaries)
            rows.append({
                "rank": rank,
                self.unit: int(index),
                "auc": round(float(self.auc[index]), 4),
                "smd": round(float(self.smd[index]), 4),
                f"mean_{self.digits[0]}": round(mean_a, 5),
                f"mean_{self.digits[1]}": round(mean_b, 5),
                "higher_for": self.digits[0] if self.auc[index] >= 0.5 else self.digits[1],
            })
        return rows

    def describe(self, top: int = 16) -> dict:
        """The numbers behind the pictures, JSON-ready."""
        points = {}
        for which, digit in enumerate(self.digits):
            points[str(digit)] = {
                "common": _node_list(self.common_points(which)),
                "distinctive": _node_list(self.distinctive_points(which)),
            }
        return {
            "layer": self.layer,
            "digits": list(self.digits),
            "images_per_digit": list(self.counts),
            "measure": self.measure,
            "measure_definition": MEASURE_DEFINITIONS[self.measure],
            "active_definition": f"value >= {self.level} x the layer's largest value for the image",
            "common_definition": f"active in >= {self.min_share:.0%} of the digit's images; distinctive: "
                                 f"active in <= {1 - self.min_share:.0%} of the other digit's images",
            "common_points": points,
            "separating": self.top(top),
        }


MEASURE_DEFINITIONS = {
    "auc": "ROC AUC of the per-image map mean (P(value for first digit > value for second)); ranked by max(AUC, 1-AUC)",
    "smd": "standardised mean difference of the per-image map mean (Cohen's d, pooled std); ranked by |d|",
}


def check_options(measure: str, level: float, min_share: float) -> None:
    """UserError unless the measure is known, 0 < level <= 1 and 0.5 < min_share <= 1."""
    check_choice("measure", measure, MEASURES)
    if not 0.0 < level <= 1.0:
        raise UserError(f"level must be in (0, 1], got {level}")
    if not 0.5 < min_share <= 1.0:
        raise UserError(f"share must be in (0.5, 1], got {min_share}")


def compare_activations(acts_a, acts_b, layer: str, digits: tuple[int, int], *, measure: str = "auc",
                        level: float = DEFAULT_LEVEL, min_share: float = DEFAULT_SHARE) -> ClassPatterns:
    """Compare one layer's outputs for the images of two digits (N_a x ... and N_b x ...)."""
    check_options(measure, level, min_share)
    a, b = _numpy(acts_a), _numpy(acts_b)
    summary_a, summary_b = map_summaries(a), map_summaries(b)
    return ClassPatterns(
        layer=layer,
        digits=(int(digits[0]), int(digits[1])),
        counts=(len(a), len(b)),
        means=(a.mean(axis=0), b.mean(axis=0)),
        active_share=(active_nodes(a, level).mean(axis=0), active_nodes(b, level).mean(axis=0)),
        summaries=(summary_a, summary_b),
        auc=auc_scores(summary_a, summary_b),
        smd=standardized_mean_difference(summary_a, summary_b),
        measure=measure,
        level=level,
        min_share=min_share,
    )


def class_patterns(model: CNN, images_a: torch.Tensor, images_b: torch.Tensor, layers: Sequence[str] | str,
                   digits: tuple[int, int], *, measure: str = "auc", level: float = DEFAULT_LEVEL,
                   min_share: float = DEFAULT_SHARE, batch_size: int = 500) -> dict[str, ClassPatterns]:
    """`compare_activations` for each layer, from raw images (N x 1 x H x W in [0, 1]), one pass each class."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    for name in layers:
        model.check_layer(name)
    acts_a = batched_activations(model, images_a, layers, batch_size)
    acts_b = batched_activations(model, images_b, layers, batch_size)
    return {name: compare_activations(acts_a[name], acts_b[name], name, digits, measure=measure,
                                      level=level, min_share=min_share) for name in layers}


def batched_activations(model: CNN, images: torch.Tensor, layers: Sequence[str], batch_size: int = 500) -> dict[str, np.ndarray]:
    """The named layers' outputs as numpy arrays, computed in batches (one pass per batch)."""
    def layer_outputs(batch: torch.Tensor) -> dict[str, np.ndarray]:
        out = model.activations(batch, layers)
        return {name: out[name].float().cpu().numpy() for name in layers}

    parts = map_batches(model, images, layer_outputs, batch_size)
    return {name: np.concatenate([part[name] for part in parts]) for name in layers}


@dataclass(frozen=True)
class Confusable:
    position: int  # position in the images passed in
    probability_other: float  # the network's probability for the other digit
    predicted: int
    probability_predicted: float


def most_confusable(model: CNN, images: torch.Tensor, other: int, count: int = 8,
                    batch_size: int = 500) -> list[Confusable]:
    """The `count` images with the highest probability for digit `other`, highest first."""
    probabilities = predict_probabilities(model, images, batch_size)
    order = np.argsort(-probabilities[:, other], kind="stable")[:count]
    return [Confusable(int(i), float(probabilities[i, other]), int(probabilities[i].argmax()),
                       float(probabilities[i].max())) for i in order]


def pick_examples(model: CNN, mnist, first: int = 4, second: int = 9) -> dict[str, DigitImage]:
    """Three test images for comparing two digits (the articles' "clear 4, unclear 4, 9").

    Args:
        model: the network whose probabilities decide.
        mnist: the data set (an `Mnist`); its test split is searched.
        first, second: the two digits.

    Returns:
        {"clear_a": the `first` with the largest margin p(first) - p(second), "unclear_a": the
        `first` the network finds most like a `second` while still predicting `first`,
        "clear_b": the `second` with the largest margin p(second) - p(first)}.
    """
    images, labels = mnist.images("test")

    def probabilities_of(digit: int) -> tuple[np.ndarray, np.ndarray]:
        positions = np.flatnonzero(labels == digit)
        # float32, the model's precision: the margins below are compared as they always were
        return positions, predict_probabilities(model, images[positions], batch_size=500).astype(np.float32)

    positions_a, probs_a = probabilities_of(first)
    positions_b, probs_b = probabilities_of(second)
    clear_a = positions_a[int(np.argmax(probs_a[:, first] - probs_a[:, second]))]
    clear_b = positions_b[int(np.argmax(probs_b[:, second] - probs_b[:, first]))]
    still_right = np.flatnonzero(probs_a.argmax(axis=1) == first)
    candidates = still_right if len(still_right) else np.arange(len(positions_a))
    unclear_a = positions_a[candidates[int(np.argmax(probs_a[candidates, second]))]]
    chosen = dataset_images(mnist, [clear_a, unclear_a, clear_b])
    return dict(zip(("clear_a", "unclear_a", "clear_b"), chosen, strict=True))


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _node_list(mask: np.ndarray) -> list:
    """Positions of True entries: [map, y, x] for maps, node numbers for dense layers."""
    if mask.ndim == 1:
        return [int(i) for i in np.flatnonzero(mask)]
    return [[int(c), int(y), int(x)] for c, y, x in np.argwhere(mask)]
