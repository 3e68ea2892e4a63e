"""How far an OIP can be trusted: a quality report for every target of an `OipRun`.

- `ratio`: the OIP's value / the target's maximum over the test images (the existing figure);
  the summary gives the share of live targets above 1.
- `majority`: "majority success" (Yosinski et al. 2015): the target is the argmax of its layer at
  the final image -- for a map the largest spatial mean among the layer's maps, for a node the
  largest map at its pixel, for a dense unit or logit the largest unit.
- `natural_path`: per earlier layer (conv and dense layers before the target's), the Spearman
  correlation between the OIP's activation pattern (each map's spatial mean) and the mean pattern
  of the target's top-k test images; `natural_path_mean` averages the layers. An OIP that drives
  its unit along another path than natural images do (Geirhos et al. 2023) scores low.
- `outside`: the share of the OIP's pixels outside the range a real pixel can have (below black
  or above white, through the model's normalisation); `clipped_value` / `clipped_ratio`: the
  objective of the image clipped into that range, and its share of the OIP's value.
- `start_similarity` (restarts >= 2): the median shift-tolerant similarity of the target's
  starts (`optvis.gallery`); with `--diverse` its complement is the `spread`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from cnnscope.optvis import objectives as O
from cnnscope.optvis.examples import EXAMPLES, dataset_examples
from cnnscope.optvis.oip import OipRun
from cnnscope.optvis.parametrizations import valid_range


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two vectors (ties get average ranks); None if one is constant."""
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return None if norm == 0 else float((ra * rb).sum() / norm)


def _pattern(out: torch.Tensor) -> torch.Tensor:
    """Each map's spatial mean (N x C); dense layers as they are."""
    return out.flatten(2).mean(dim=2) if out.dim() > 2 else out


def _target(objective: O.Objective) -> O.Target | None:
    return objective.targets[0] if len(objective.targets) == 1 and objective.targets[0].map is not None else None


def majority_success(model, run: OipRun) -> list[bool | None]:
    """Per target, whether it is the argmax of its layer at its OIP (None for whole-layer objectives)."""
    result: list[bool | None] = []
    with torch.no_grad():
        for i, objective in enumerate(run.objectives):
            target = _target(objective)
            if target is None:
                result.append(None)
                continue
            layer = O.resolve_layer(target.layer, model)
            out = model.activations(run.images[i:i + 1].float(), [layer], normalize=False)[layer][0]
            if out.dim() == 3 and (target.y is not None or target.x is not None or objective.kind == "node"):
                y = out.shape[-2] // 2 if target.y is None else target.y
                x = out.shape[-1] // 2 if target.x is None else target.x
                scores = out[:, y, x]
            else:
                scores = out.flatten(1).mean(dim=1) if out.dim() == 3 else out
            result.append(bool(int(scores.argmax()) == target.map))
    return result


def earlier_layers(model, objective: O.Objective) -> list[str]:
    """The conv and dense layers before the objective's (first) layer."""
    target = O.resolve_layer(objective.layers[0], model)
    stop = model.layer_names.index(target)
    return [name for name in model.layers_of_kind("conv", "dense") if model.layer_names.index(name) < stop]


def natural_path(model, run: OipRun, images: torch.Tensor, top: torch.Tensor) -> list[dict[str, float | None]]:
    """Per target, {earlier layer: Spearman(OIP pattern, mean pattern of its top images)}.

    Args:
        images: raw [0, 1] test images (N x 1 x H x W).
        top: M x k indices of each target's top images (`dataset_examples(...).index["top"]`).
    """
    layers = list(dict.fromkeys(name for o in run.objectives for name in earlier_layers(model, o)))
    if not layers:
        return [{} for _ in run.objectives]
    m, k = top.shape
    with torch.no_grad():
        oip = model.activations(run.images.float(), layers, normalize=False)
        natural = model.activations(images[top.flatten()].float(), layers, normalize=True)
    result = []
    for i, objective in enumerate(run.objectives):
        mine = {}
        for layer in earlier_layers(model, objective):
            own = _pattern(oip[layer][i:i + 1])[0].cpu().double().numpy()
            mean = _pattern(natural[layer]).view(m, k, -1)[i].mean(dim=0).cpu().double().numpy()
            mine[layer] = spearman(own, mean)
        result.append(mine)
    return result


def clipped_values(model, run: OipRun) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(share of pixels outside the valid range (M,), objective value of the clipped image (M,)),
    or None when the model standardises every image itself (per-image normalisation)."""
    bounds = valid_range(model)
    if bounds is None:
        return None
    low, high = (b.to(run.images.device) for b in bounds)
    tolerance = 1e-4 * float((high - low).abs().max())
    outside = ((run.images < low - tolerance) | (run.images > high + tolerance)).flatten(1).float().mean(dim=1)
    clipped = torch.maximum(torch.minimum(run.images.float(), high), low)
    values = O.objective_values(O.per_element(run.objectives), model, clipped).float().cpu()
    return outside.cpu(), values


def _round(value, digits: int = 4):
    if value is None or (isinstance(value, float) and value != value):
        return None
    return round(float(value), digits)


def _median(values: Sequence) -> float | None:
    kept = [v for v in values if v is not None]
    return _round(float(np.median(kept))) if kept else None


def quality_report(run: OipRun, model, images: torch.Tensor, values: torch.Tensor, k: int = EXAMPLES) -> dict:
    """The per-target figures and a summary (see the module docstring).

    Args:
        run: the OIPs.
        model: the model they were found for.
        images: raw [0, 1] test images.
        values: every target's value on every image (M x N, `examples.target_values`).
        k: how many top images make a target's natural pattern.
    """
    top = dataset_examples(values, k).index["top"]
    dataset_max = values.max(dim=1).values
    majority = majority_success(model, run)
    paths = natural_path(model, run, images, top)
    clipped = clipped_values(model, run)
    similarity = start_similarities(run)
    rows = []
    for i in range(len(run.objectives)):
        live, reacted, final = float(dataset_max[i]) > 0, bool(run.reacted[i]), float(run.final[i])
        path_values = [v for v in paths[i].values() if v is not None]
        row = {
            "ratio": _round(final / float(dataset_max[i])) if live and reacted else None,
            "majority": majority[i] if reacted else False,
            "natural_path": {layer: _round(v) for layer, v in paths[i].items()},
            "natural_path_mean": _round(np.mean(path_values)) if path_values else None,
        }
        if clipped is not None:
            outside, clipped_value = clipped[0][i], clipped[1][i]
            row.update({"outside": _round(outside), "clipped_value": _round(clipped_value),
                        "clipped_ratio": _round(float(clipped_value) / final) if reacted and final > 0 else None})
        if similarity is not None:
            row["start_similarity"] = _round(similarity[i])
            if run.diverse:
                row["spread"] = _round(1 - similarity[i]) if similarity[i] == similarity[i] else None
        rows.append(row)
    return {"targets": rows, "summary": summarize(rows, dataset_max, run.reacted)}


def start_similarities(run: OipRun) -> list[float] | None:
    """Per target, the similarity of its starts (`gallery.start_similarity`), or None for a run
    without two starts per target or a raced one."""
    from cnnscope.optvis.gallery import raced, start_similarity

    if run.starts is None or run.starts.images.shape[0] < 2 or raced(run):
        return None
    return [float(v) for v in start_similarity(run)]


def summarize(rows: list[dict], dataset_max: torch.Tensor, reacted: torch.Tensor) -> dict:
    """The summary table: counts, shares and medians over the live, reacting targets."""
    live = [i for i in range(len(rows)) if float(dataset_max[i]) > 0]
    good = [i for i in live if bool(reacted[i])]
    ratios = [rows[i]["ratio"] for i in good]
    majority = [rows[i]["majority"] for i in good if rows[i]["majority"] is not None]
    summary = {
        "targets": len(rows), "reacted": int(reacted.sum()), "live": len(live),
        "share_live_above_dataset_max": _round(sum(r > 1 for r in ratios) / len(live)) if live else None,
        "median_ratio": _median(ratios),
        "majority_success_rate": _round(sum(majority) / len(majority)) if majority else None,
        "median_natural_path": _median([rows[i]["natural_path_mean"] for i in good]),
    }
    if rows and "outside" in rows[0]:
        summary["median_outside"] = _median([rows[i]["outside"] for i in good])
        summary["median_clipped_ratio"] = _median([rows[i]["clipped_ratio"] for i in good])
    if rows and "start_similarity" in rows[0]:
        summary["median_start_similarity"] = _median([rows[i]["start_similarity"] for i in good])
    return summary


def marker(row: dict) -> str:
    """A compact tile marker: "x1.4 M np.62 o12%" (ratio, M = majority success, natural path, outside)."""
    parts = []
    if row.get("ratio") is not None:
        parts.append(f"x{row['ratio']:.2g}")
    if row.get("majority"):
        parts.append("M")
    if row.get("natural_path_mean") is not None:
        parts.append(f"np{row['natural_path_mean']:.2f}".replace("0.", "."))
    if row.get("outside") is not None:
        parts.append(f"o{100 * row['outside']:.0f}%")
    return " ".join(parts)


def add_quality(run: OipRun, model, images: torch.Tensor, spread: bool = False, k: int = EXAMPLES) -> OipRun:
    """Fill `run`'s dataset maxima, dataset examples (top `k`; with `spread` also middle and bottom)
    and quality report from raw test images, in one cached batched pass; returns the run."""
    from cnnscope.optvis.examples import target_values

    values = target_values(model, run.objectives, images)
    run.dataset_max, run.dataset_argmax = values.max(dim=1)
    run.examples = dataset_examples(values, k, spread)
    run.report = quality_report(run, model, images, values, k)
    return run
