"""Do two training runs learn the same maps? Layer similarity (linear CKA) and unit matching
of several models, in one pass over the images.

Two questions, as the literature asks them (the measures themselves, on activations, are in
`analysis.similarity`; they are importable from here):

- **Which layers correspond?** Linear CKA between every layer of one model and every layer of
  the other. A layer's activations are big (10000 images x 21632 values for `Conv2D_1`), so
  `compare_models` never holds them: per minibatch it forms each layer's n x n Gram matrix,
  adds up the *unbiased* HSIC of every pair of layers (Song et al. 2012) and divides at the end
  (the minibatch CKA of Nguyen et al. 2021, https://arxiv.org/abs/2010.15327). `linear_cka`
  is the exact full-batch value, for checks.
- **Which units correspond?** Per conv/dense layer present in both models, the Pearson
  correlation of every unit of A with every unit of B over the images (a map's spatial mean,
  or every position as a sample), and the one-to-one assignment with the largest total
  correlation (`match_units`). Units that never vary (dead maps) correlate with nothing
  (0 by definition here).

Several models are compared in one pass over the images: every batch goes through every
model once, and every pair gets its statistics from the same batch. This module holds that
pass (`compare_models`), its results (`Comparison`, `PairComparison`, the strongest images of
each unit) and a comparison's N x N tables and JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cnnscope.analysis.similarity import (  # the measures, also importable from here
    THRESHOLD as THRESHOLD,
    LayerMatch as LayerMatch,
    Moments as Moments,
    linear_cka as linear_cka,
    match_units as match_units,
    unbiased_hsic as unbiased_hsic,
)
from cnnscope.errors import UserError, check_positive, check_whole
from cnnscope.nn.model import CNN, map_batches

TOP_IMAGES = 9  # test images kept per unit (the strongest spatial means)


# ---- comparing models ------------------------------------------------------------------------
@dataclass
class PairComparison:
    """Models i and j of a `Comparison`: CKA of every layer of i with every layer of j, and the
    unit matching of the layers they share."""

    first: int
    second: int
    cka: np.ndarray  # layers of first x layers of second
    matches: dict[str, LayerMatch] = field(default_factory=dict)

    def same_layer_cka(self, layers_a: Sequence[str], layers_b: Sequence[str]) -> dict[str, float]:
        """CKA of each layer name present in both models with itself (the heatmap's diagonal)."""
        return {name: float(self.cka[layers_a.index(name), layers_b.index(name)])
                for name in layers_a if name in layers_b}


@dataclass
class Comparison:
    """Every pair of the compared models, and per model the strongest images of each unit."""

    names: list[str]
    layers: list[list[str]]  # per model, the layers in the CKA matrices
    match_layers: list[str]  # the layers matched unit by unit
    images: int  # how many images were used
    batch_size: int
    pairs: dict[tuple[int, int], PairComparison]
    top_images: list[dict[str, np.ndarray]]  # per model: layer -> units x TOP_IMAGES image indices
    top_values: list[dict[str, np.ndarray]]  # their spatial means (all equal for a dead unit)

    def pair(self, i: int = 0, j: int = 1) -> PairComparison:
        return self.pairs[(i, j)]

    def same_layer_cka(self, i: int = 0, j: int = 1) -> dict[str, float]:
        return self.pair(i, j).same_layer_cka(self.layers[i], self.layers[j])


def shared_layers(models: Sequence[CNN], layers: Sequence[str] | None = None,
                  names: Sequence[str] | None = None) -> list[str]:
    """The conv and dense layers to match unit by unit: the given ones (each must be in every
    model, with the same kind) or, for None, every conv/dense layer all models have.

    Args:
        models: the models compared.
        layers: the layer names asked for, or None.
        names: the models' names for messages.

    Returns:
        The layer names, in the first model's order.
    """
    names = list(names or [f"model {i + 1}" for i in range(len(models))])
    if layers is None:
        first = models[0].layers_of_kind("conv", "dense")
        return [name for name in first if all(name in m.layers_of_kind("conv", "dense") for m in models[1:])]
    for name in layers:
        missing = [n for n, m in zip(names, models, strict=True) if name not in m.layer_names]
        if missing:
            having = [n for n, m in zip(names, models, strict=True) if name in m.layer_names]
            where = f"only in {', '.join(having)}" if having else "in none of the models"
            common = shared_layers(models, None, names)
            raise UserError(f"layer {name!r} is {where}, not in {', '.join(missing)}; layers in all: "
                            f"{', '.join(common) or 'none'}", "layers")
        kinds = {m.layer_spec(name).kind for m in models}
        if not kinds <= {"conv", "dense"} or len(kinds) > 1:
            raise UserError(f"layer {name!r} must be a conv or dense layer in every model to match its units, "
                            f"got {', '.join(sorted(kinds))}", "layers")
    return list(layers)


def compare_models(models: Sequence[CNN], images: torch.Tensor, *, names: Sequence[str] | None = None,
                   match_layers: Sequence[str] | None = None, batch_size: int = 500,
                   threshold: float = THRESHOLD, per_position: bool = False) -> Comparison:
    """Minibatch linear CKA between all layers of every pair of models, and unit matching.

    Args:
        models: two or more CNNs (any layouts) taking the same images.
        images: raw [0, 1] images, N x 1 x H x W (N >= 4).
        names: a name per model (default "model 1", ...).
        match_layers: conv/dense layers to match unit by unit (None: all those in every model).
        batch_size: images per minibatch; batches are made equal in size (one memory bound:
            a batch's activations of one model at a time, and n x n Gram matrices).
        threshold: the correlation from which a unit counts as having a partner.
        per_position: correlate maps over images and positions (the spatial shapes must agree)
            instead of their spatial means.

    Returns:
        The comparison of every pair (i < j).
    """
    if len(models) < 2:
        raise UserError(f"need at least two models to compare, got {len(models)}", "models")
    check_whole("batch size", batch_size, minimum=4)
    check_positive("threshold", threshold, allow_zero=True)
    if images.shape[0] < 4:
        raise UserError(f"need at least 4 images to compare models, got {images.shape[0]}", "images")
    names = list(names or [f"model {i + 1}" for i in range(len(models))])
    matched = shared_layers(models, match_layers, names)
    if per_position:
        _check_same_shapes(models, matched, names)
    layers = [[n for n in m.layer_names if m.layer_spec(n).kind != "dropout"] for m in models]
    batch = _even_batch_size(images.shape[0], batch_size)
    stats = _PassStatistics(models, layers, matched, per_position)
    for model in models:
        model.eval()
    for start in range(0, images.shape[0], batch):
        stats.add(images[start:start + batch], start, batch)
    pairs = {}
    for i, j in itertools.combinations(range(len(models)), 2):
        cka = stats.cka(i, j)
        matches = {name: match_units(stats.moments[(i, j, name)].correlation(), name, threshold, per_position,
                                     stats.moments[(i, j, name)].dead())
                   for name in matched}
        pairs[(i, j)] = PairComparison(i, j, cka, matches)
    return Comparison(names, layers, matched, int(images.shape[0]), batch, pairs,
                      *stats.top_images())


def _even_batch_size(count: int, batch_size: int) -> int:
    """The batch size that splits `count` images into ceil(count / batch_size) nearly equal batches
    (so no last batch is too small for the unbiased HSIC)."""
    batches = -(-count // batch_size)
    return -(-count // batches)


def _check_same_shapes(models: Sequence[CNN], layers: Sequence[str], names: Sequence[str]) -> None:
    for name in layers:
        shapes = {tuple(m.output_shape(name)[1:]) for m in models}
        if len(shapes) > 1:
            raise UserError(f"per-position matching needs the same map size of {name!r} in every model; "
                            f"{', '.join(names)} have {', '.join('x'.join(map(str, s)) for s in shapes)}",
                            "per position")


class _PassStatistics:
    """What one pass over the images accumulates: per pair of models the HSIC sums of every pair
    of layers, the correlation moments of the matched layers, and per model its top images."""

    def __init__(self, models, layers, matched, per_position):
        self.models, self.layers, self.matched, self.per_position = models, layers, matched, per_position
        count = len(models)
        self.hsic_self = [np.zeros(len(layers[m])) for m in range(count)]
        self.hsic = {(i, j): np.zeros((len(layers[i]), len(layers[j])))
                     for i, j in itertools.combinations(range(count), 2)}
        self.moments = {(i, j, name): Moments(models[i].output_shape(name)[0], models[j].output_shape(name)[0])
                        for i, j in self.hsic for name in matched}
        self.top = [{name: (torch.full((models[m].output_shape(name)[0], 0), -float("inf")),
                            torch.zeros((models[m].output_shape(name)[0], 0), dtype=torch.long))
                     for name in matched} for m in range(count)]

    def add(self, images: torch.Tensor, start: int, batch_size: int) -> None:
        grams, units = [], []
        for m, model in enumerate(self.models):
            def compute(batch, m=m, model=model):
                acts = model.activations(batch, self.layers[m])
                return ([(a.reshape(a.shape[0], -1).float() @ a.reshape(a.shape[0], -1).float().T).cpu()
                         for a in acts.values()],
                        {name: _unit_values(acts[name], self.per_position).cpu() for name in self.matched},
                        {name: _spatial_mean(acts[name]).cpu() for name in self.matched})
            [(gram, unit, means)] = map_batches(model, images, compute, batch_size)
            grams.append(gram)
            units.append(unit)
            self._add_top(m, means, start)
        for m, gram in enumerate(grams):
            self.hsic_self[m] += [unbiased_hsic(k, k) for k in gram]
        for (i, j), total in self.hsic.items():
            total += [[unbiased_hsic(k, g) for g in grams[j]] for k in grams[i]]
            for name in self.matched:
                self.moments[(i, j, name)].add(units[i][name], units[j][name])

    def _add_top(self, m: int, means: dict[str, torch.Tensor], start: int) -> None:
        for name, values in means.items():
            best, where = self.top[m][name]
            index = torch.arange(start, start + values.shape[0]).expand(values.shape[1], -1)
            values = torch.cat([best, values.T.double()], dim=1)
            index = torch.cat([where, index], dim=1)
            keep = values.topk(min(TOP_IMAGES, values.shape[1]), dim=1).indices
            self.top[m][name] = (values.gather(1, keep), index.gather(1, keep))

    def cka(self, i: int, j: int) -> np.ndarray:
        norms = np.sqrt(np.outer(self.hsic_self[i], self.hsic_self[j]))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norms > 0, self.hsic[(i, j)] / np.where(norms > 0, norms, 1.0), 0.0)

    def top_images(self) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
        """Per model, layer -> the indices of each unit's strongest images, and their values."""
        return ([{name: where.numpy() for name, (_, where) in top.items()} for top in self.top],
                [{name: best.numpy() for name, (best, _) in top.items()} for top in self.top])


def _spatial_mean(acts: torch.Tensor) -> torch.Tensor:
    """n x C: each map's mean over its positions (a dense layer's units as they are)."""
    return acts.mean(dim=(2, 3)) if acts.dim() == 4 else acts


def _unit_values(acts: torch.Tensor, per_position: bool) -> torch.Tensor:
    """The samples of each unit for the correlation: n x C spatial means, or (n*H*W) x C values."""
    if per_position and acts.dim() == 4:
        return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1])
    return _spatial_mean(acts)


# ---- tables and JSON -------------------------------------------------------------------------
def pairwise_tables(comparison: Comparison) -> dict[str, dict[str, np.ndarray]]:
    """N x N tables per layer for many models (a sweep): the CKA of a layer with the same layer
    (`cka`, for layers every model has), and per matched layer the median matched correlation
    (`median_match`) and the share of units with a partner (`share_with_partner`); diagonals 1.

    Returns:
        figure name -> layer -> N x N array.
    """
    count = len(comparison.names)
    common = [name for name in comparison.layers[0] if all(name in layers for layers in comparison.layers)]
    tables = {"cka": {name: np.eye(count) for name in common},
              "median_match": {name: np.eye(count) for name in comparison.match_layers},
              "share_with_partner": {name: np.eye(count) for name in comparison.match_layers}}
    for (i, j), pair in comparison.pairs.items():
        for name, value in pair.same_layer_cka(comparison.layers[i], comparison.layers[j]).items():
            if name in tables["cka"]:
                tables["cka"][name][i, j] = tables["cka"][name][j, i] = value
        for name, match in pair.matches.items():
            median = float(np.median(match.matched))
            tables["median_match"][name][i, j] = tables["median_match"][name][j, i] = median
            share = match.share_with_partner
            tables["share_with_partner"][name][i, j] = tables["share_with_partner"][name][j, i] = share
    return tables


def comparison_to_json(comparison: Comparison, include_correlations: bool = False) -> dict:
    """Every figure of a comparison: settings, per pair the CKA matrix, the same-layer CKA and the
    matching of each layer (pairs best first, summary); with more than two models the N x N tables.

    Args:
        comparison: the result of `compare_models`.
        include_correlations: also the full unit x unit correlation matrices.

    Returns:
        A JSON-serialisable dict.
    """
    body = {"kind": "cnnscope-compare/1", "models": comparison.names, "images": comparison.images,
            "batch_size": comparison.batch_size, "estimator": "minibatch linear CKA, unbiased HSIC (Nguyen et al. 2021)",
            "layers": comparison.layers, "match_layers": comparison.match_layers, "pairs": []}
    for (i, j), pair in comparison.pairs.items():
        entry = {"models": [comparison.names[i], comparison.names[j]],
                 "cka": _rounded(pair.cka), "same_layer_cka": {k: round(v, 6) for k, v in
                                                               comparison.same_layer_cka(i, j).items()},
                 "matches": {}}
        for name, match in pair.matches.items():
            entry["matches"][name] = {**match.summary(), "pairs": match.pairs.tolist(),
                                      "correlations": _rounded(match.matched)}
            if include_correlations:
                entry["matches"][name]["correlation_matrix"] = _rounded(match.correlation)
        body["pairs"].append(entry)
    if len(comparison.names) > 2:
        body["tables"] = {what: {name: _rounded(table) for name, table in layers.items()}
                          for what, layers in pairwise_tables(comparison).items()}
    return body


def _rounded(array: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()
