"""How alike are two representations of the same examples? Layer similarity (linear CKA) and
unit matching, on activations already computed: no models here (`analysis.compare` runs them).

- **Layers**: linear centred kernel alignment (Kornblith et al. 2019,
  https://arxiv.org/abs/1905.00414). `linear_cka` is the exact full-batch value;
  `unbiased_hsic` is the unbiased HSIC of two Gram matrices (Song et al. 2012), what the
  minibatch CKA of Nguyen et al. 2021 (https://arxiv.org/abs/2010.15327) adds up batch by batch.
- **Units**: `Moments` accumulates the running sums for the Pearson correlation of every unit
  of A with every unit of B (units that never vary, dead maps, correlate 0 with everything), and
  `match_units` finds the one-to-one assignment with the largest total correlation (Li et al.
  2015, "Convergent learning", https://arxiv.org/abs/1511.07543) with SciPy's
  `linear_sum_assignment`; `LayerMatch` is the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnscope.errors import UserError, check_positive

THRESHOLD = 0.5  # a unit "has a partner" when its matched correlation is at least this


# ---- CKA -------------------------------------------------------------------------------------
def unbiased_hsic(k: torch.Tensor, g: torch.Tensor) -> float:
    """The unbiased HSIC estimator of two n x n Gram matrices (Song et al. 2012), n >= 4.

    Args:
        k: Gram matrix of one representation (x @ x.T).
        g: Gram matrix of the other, for the same n examples.

    Returns:
        HSIC_1 = (tr(K~G~) + 1'K~1 1'G~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~G~1) / (n(n-3)),
        with K~, G~ the matrices with zeroed diagonals.
    """
    n = k.shape[0]
    if n < 4:
        raise UserError(f"the unbiased HSIC needs at least 4 examples, got {n}", "images")
    k = k.double().clone()
    g = g.double().clone()
    k.fill_diagonal_(0)
    g.fill_diagonal_(0)
    trace = float((k * g).sum())  # tr(K G) for symmetric matrices
    sums = float(k.sum()) * float(g.sum()) / ((n - 1) * (n - 2))
    cross = float(k.sum(0) @ g.sum(1)) * 2 / (n - 2)
    return (trace + sums - cross) / (n * (n - 3))


def linear_cka(x: torch.Tensor, y: torch.Tensor, unbiased: bool = False) -> float:
    """The exact linear CKA of two representations of the same n examples.

    Args:
        x: n x p features (any shape n x ...; flattened per example).
        y: n x q features of the same examples.
        unbiased: False: Kornblith et al.'s centred form ||Y'X||^2 / (||X'X|| ||Y'Y||);
            True: from the unbiased HSIC of the full Gram matrices (what `compare_models`
            estimates, batch by batch).

    Returns:
        The CKA, in [0, 1] for the biased form (0 when a representation is constant).
    """
    x = x.reshape(x.shape[0], -1).double()
    y = y.reshape(y.shape[0], -1).double()
    if x.shape[0] != y.shape[0]:
        raise UserError(f"CKA needs the same examples in both: {x.shape[0]} vs {y.shape[0]}", "images")
    if unbiased:
        k, g = x @ x.T, y @ y.T
        return _cka_from_hsic(unbiased_hsic(k, g), unbiased_hsic(k, k), unbiased_hsic(g, g))
    x = x - x.mean(0)
    y = y - y.mean(0)
    if max(x.shape[1], y.shape[1]) > x.shape[0]:  # wide layers: the same sums over n x n Gram matrices
        k, g = x @ x.T, y @ y.T
        cross = float((k * g).sum())
        norms = float(torch.linalg.matrix_norm(k)) * float(torch.linalg.matrix_norm(g))
    else:
        cross = float((y.T @ x).square().sum())
        norms = float(torch.linalg.matrix_norm(x.T @ x)) * float(torch.linalg.matrix_norm(y.T @ y))
    return cross / norms if norms > 0 else 0.0


def _cka_from_hsic(kl: float, kk: float, ll: float) -> float:
    return kl / float(np.sqrt(kk * ll)) if kk > 0 and ll > 0 else 0.0


# ---- unit matching ---------------------------------------------------------------------------
@dataclass
class LayerMatch:
    """The one-to-one matching of one layer's units between two models.

    `pairs` (K x 2: unit of A, unit of B) and `matched` (their correlations) are sorted from the
    best match to the worst; K = min(units of A, units of B).
    """

    layer: str
    correlation: np.ndarray  # units of A x units of B
    pairs: np.ndarray
    matched: np.ndarray
    threshold: float = THRESHOLD
    per_position: bool = False
    dead_a: np.ndarray | None = None  # per unit of A: it never varies over the images
    dead_b: np.ndarray | None = None

    @property
    def share_with_partner(self) -> float:
        """Share of the matched units whose partner correlates at least `threshold`."""
        return float((self.matched >= self.threshold).mean()) if len(self.matched) else 0.0

    @property
    def without_partner(self) -> list[int]:
        """Units of A whose best one-to-one partner correlates below `threshold`, worst last."""
        return [int(a) for a, c in zip(self.pairs[:, 0], self.matched, strict=True) if c < self.threshold]

    def summary(self) -> dict:
        """Median, mean and quartiles of the matched correlations and the share with a partner."""
        m = self.matched
        return {
            "units": [int(s) for s in self.correlation.shape], "threshold": self.threshold,
            "per_position": self.per_position,
            "median": round(float(np.median(m)), 4), "mean": round(float(m.mean()), 4),
            "quartiles": [round(float(q), 4) for q in np.percentile(m, [25, 75])],
            "share_with_partner": round(self.share_with_partner, 4),
            "without_partner": self.without_partner,
            "dead": [int(d.sum()) if d is not None else None for d in (self.dead_a, self.dead_b)],
        }


def match_units(correlation: np.ndarray, layer: str = "", threshold: float = THRESHOLD,
                per_position: bool = False, dead: tuple[np.ndarray, np.ndarray] | None = None) -> LayerMatch:
    """The one-to-one assignment of units maximising the total correlation.

    Args:
        correlation: units of A x units of B (NaN counts as 0).
        layer: the layer's name (for the record).
        threshold: the correlation from which a unit counts as having a partner.
        per_position: whether the correlations were taken per position (for the record).
        dead: per unit of A and of B, whether it never varies (for the record).

    Returns:
        The matching, best pair first.
    """
    from scipy.optimize import linear_sum_assignment

    check_positive("threshold", threshold, allow_zero=True)
    correlation = np.nan_to_num(np.asarray(correlation, dtype=np.float64))
    rows, cols = linear_sum_assignment(correlation, maximize=True)
    matched = correlation[rows, cols]
    order = np.argsort(-matched, kind="stable")
    return LayerMatch(layer, correlation, np.stack([rows[order], cols[order]], axis=1), matched[order],
                      float(threshold), per_position, *(dead or (None, None)))


class Moments:
    """Running sums for the Pearson correlation of the columns of a with those of b."""

    def __init__(self, units_a: int, units_b: int):
        self.count = 0
        self.sum_a, self.sum_b = torch.zeros(units_a, dtype=torch.float64), torch.zeros(units_b, dtype=torch.float64)
        self.sq_a, self.sq_b = torch.zeros_like(self.sum_a), torch.zeros_like(self.sum_b)
        self.cross = torch.zeros(units_a, units_b, dtype=torch.float64)

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a, b = a.double(), b.double()
        self.count += a.shape[0]
        self.sum_a += a.sum(0)
        self.sum_b += b.sum(0)
        self.sq_a += a.square().sum(0)
        self.sq_b += b.square().sum(0)
        self.cross += a.T @ b

    def _std(self, sums: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        n = self.count
        return (squares / n - (sums / n).square()).clamp_min(0).sqrt()

    def dead(self) -> tuple[np.ndarray, np.ndarray]:
        """Per unit of a and of b: True if it never varies over the samples."""
        std_a, std_b = self._std(self.sum_a, self.sq_a), self._std(self.sum_b, self.sq_b)
        return (std_a <= 1e-9 * max(1.0, float(std_a.max()))).numpy(), (std_b <= 1e-9 * max(1.0, float(std_b.max()))).numpy()

    def correlation(self) -> np.ndarray:
        n = self.count
        cov = self.cross / n - torch.outer(self.sum_a / n, self.sum_b / n)
        scale = torch.outer(self._std(self.sum_a, self.sq_a), self._std(self.sum_b, self.sq_b))
        dead_a, dead_b = self.dead()
        live = torch.from_numpy(~dead_a[:, None] & ~dead_b[None, :])
        return torch.where(live, cov / torch.where(live, scale, 1.0), 0.0).clamp(-1, 1).numpy()
