"""What an OIP run holds and how it is read: `OipRun` (and every start's `StartRecord`), a
subset of its targets, the coverage figures (`quality`), the articles' convergence report,
tile labels and the JSON sidecar (`run_to_json`). `optvis.oip` makes runs; this module only
reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.examples import DatasetExamples
from cnnscope.optvis.starts import DEFAULT_FACTORS, DEFAULT_SCALES


@dataclass
class StartRecord:
    """The outcome of every start of every target (restart r of target i at [r, i])."""

    images: torch.Tensor  # R x M x 1 x H x W final images
    final: torch.Tensor  # R x M final values
    reacted: torch.Tensor  # bool R x M
    seeds: list[list[int]]  # R lists of M seeds
    kinds: list[list[str]]  # R lists of M start kinds


@dataclass
class OipRun:
    """OIPs for a list of objectives (one per target), with everything the pictures and JSON need."""

    objectives: list[O.Objective]
    images: torch.Tensor  # M x 1 x H x W, standardised input space
    values: torch.Tensor  # (steps + 1) x M trajectory of the kept start
    reacted: torch.Tensor  # bool (M,)
    steps_used: torch.Tensor  # int (M,)
    snapshots: dict[int, torch.Tensor]  # step -> M x 1 x H x W
    restart: torch.Tensor  # int (M,) which restart was kept
    start_seeds: list[int]  # seed of the kept start's noise
    start_kind: list[str]  # "noise", "precursor" (a long-range candidate won) or "image"
    settings: AscentSettings
    scales: tuple[int, ...] = DEFAULT_SCALES
    factors: tuple[float, ...] = DEFAULT_FACTORS
    restarts: int = 1
    precursor: int = 0
    precursor_steps: int = 0
    seed: int = 0
    dataset_max: torch.Tensor | None = None  # (M,) highest value over the test images
    dataset_argmax: torch.Tensor | None = None  # (M,) index of that test image
    extra: dict = field(default_factory=dict)
    starts: StartRecord | None = None  # every start's final image and value (the kept one included)
    strategy: dict = field(default_factory=lambda: {"name": "superposition"})
    diverse: int = 0  # K starts per target pushed apart by the diversity term (0: off)
    examples: DatasetExamples | None = None  # each target's top (middle, bottom) test images
    report: dict | None = None  # `optvis.quality.quality_report`: per-target rows and a summary

    @property
    def final(self) -> torch.Tensor:
        return self.values[-1]

    @property
    def labels(self) -> list[str]:
        return [o.name for o in self.objectives]

    def index_of(self, name: str) -> int:
        return self.labels.index(name)


def subset(run: OipRun, indices: Sequence[int]) -> OipRun:
    """The run's targets `indices` (in that order), with everything recorded for them: images,
    trajectories, snapshots, every start, dataset maxima, examples and quality rows."""
    keep = torch.as_tensor(list(indices), dtype=torch.long)
    rows = keep.tolist()

    def pick(tensor):
        return None if tensor is None else tensor[keep]

    starts = run.starts and StartRecord(run.starts.images[:, keep], run.starts.final[:, keep],
                                        run.starts.reacted[:, keep], [[s[i] for i in rows] for s in run.starts.seeds],
                                        [[k[i] for i in rows] for k in run.starts.kinds])
    examples = run.examples and DatasetExamples({r: v[keep] for r, v in run.examples.index.items()},
                                                {r: v[keep] for r, v in run.examples.value.items()})
    report = run.report and {**run.report, "targets": [run.report["targets"][i] for i in rows]}
    return replace(run, objectives=[run.objectives[i] for i in rows], images=run.images[keep],
                   values=run.values[:, keep], reacted=run.reacted[keep], steps_used=run.steps_used[keep],
                   snapshots={step: image[keep] for step, image in run.snapshots.items()},
                   restart=run.restart[keep], start_seeds=[run.start_seeds[i] for i in rows],
                   start_kind=[run.start_kind[i] for i in rows], dataset_max=pick(run.dataset_max),
                   dataset_argmax=pick(run.dataset_argmax), starts=starts, examples=examples, report=report)


def quality(run: OipRun) -> dict:
    """Coverage figures: live targets, reacted, share of live with an OIP, share beating dataset max."""
    total = len(run.objectives)
    reacted = run.reacted
    figures = {"targets": total, "reacted": int(reacted.sum())}
    if run.dataset_max is None:
        return figures
    live = run.dataset_max > 0
    beats = live & reacted & (run.final > run.dataset_max)
    n_live = int(live.sum())
    figures.update({
        "live": n_live,
        "live_with_oip": int((live & reacted).sum()),
        "share_live_with_oip": round(float((live & reacted).sum()) / n_live, 4) if n_live else None,
        "beats_dataset_max": int(beats.sum()),
        "share_live_beating_dataset_max": round(float(beats.sum()) / n_live, 4) if n_live else None,
        "reacted_not_live": int((reacted & ~live).sum()),
        "median_oip_over_dataset_max": _median_ratio(run.final[live & reacted], run.dataset_max[live & reacted]),
    })
    return figures


def _median_ratio(a: torch.Tensor, b: torch.Tensor) -> float | None:
    if a.numel() == 0:
        return None
    return round(float((a / b).median()), 3)


def convergence(run: OipRun, index: int) -> list[dict]:
    """The articles' convergence report for target `index`, one row per snapshot step.

    Each row: `step`; `value` (objective after that many updates); `step_change`, the change
    of the value in that one step, v[k] - v[k-1] (the articles' first number in
    "3.6/41 => 3.9/76 => ... => 0.03/418"); `relative`, step_change / value (their convergence
    measure); and `since_snapshot`, the change since the previous snapshot. Undefined entries
    (step 0, a zero value) are None.
    """
    values = run.values[:, index].double()
    rows, previous = [], None
    for step in sorted(run.snapshots):
        k = min(int(step), values.shape[0] - 1)
        value = float(values[k])
        step_change = float(values[k] - values[k - 1]) if k > 0 else None
        rows.append({
            "step": int(step), "value": value, "step_change": step_change,
            "relative": step_change / value if step_change is not None and value != 0 else None,
            "since_snapshot": value - previous if previous is not None else None,
        })
        previous = value
    return rows


def convergence_line(rows: Sequence[dict]) -> str:
    """The report in the articles' notation: step change / value at each snapshot after the start."""
    return " => ".join(f"{row['step_change']:.2g}/{row['value']:.3g}" for row in rows if row["step_change"] is not None)


def strongest(run: OipRun) -> int:
    """Index of the reacting target with the highest final value (the first target if none reacted)."""
    return int(torch.where(run.reacted, run.final, torch.full_like(run.final, -float("inf"))).argmax())


def tile_text(run: OipRun, index: int, short: bool = True) -> str:
    """A target's label: its map number (or name, or digit) and final value, or "no reaction"."""
    objective = run.objectives[index]
    target = objective.targets[0] if objective.targets else None
    name = str(target.map) if short and target is not None and target.map is not None else objective.name
    if target is not None and target.layer == O.LOGITS:
        name = f"digit {target.map}"
    if not bool(run.reacted[index]):
        return f"{name}  no reaction"
    return f"{name}  {float(run.final[index]):.4g}"


# ---- JSON ------------------------------------------------------------------------------------
def _round(values, digits: int = 6) -> list:
    array = np.asarray(values, dtype=np.float64)
    return [float(f"{v:.{digits}g}") for v in array.ravel()]


def run_to_json(run: OipRun, model=None, include_images: bool = True) -> dict:
    """Every parameter and per-target figure (trajectory, steps used, reacted, final, image)."""
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(run.settings).items()}
    settings["snapshot_steps"] = list(run.settings.snapshots())
    body = {
        "kind": "cnnscope-oip/1",
        "settings": settings,
        "noise": {"scales": list(run.scales), "factors": list(run.factors), "seed": run.seed},
        "restarts": run.restarts,
        "precursor": run.precursor,
        "precursor_steps": run.precursor_steps,
        "strategy": run.strategy,
        "diverse": run.diverse,
        **({"diversity": run.extra["diversity"]} if "diversity" in run.extra else {}),
        "space": "standardised network input (after the model's normalisation)",
        "quality": quality(run),
        **({"quality_summary": run.report["summary"]} if run.report is not None else {}),
        "targets": [],
    }
    if model is not None:
        body["layers"] = {name: O.resolve_layer(name, model) for name in dict.fromkeys(
            n for o in run.objectives for n in o.layers)}
    for i, objective in enumerate(run.objectives):
        target = objective.targets[0] if len(objective.targets) == 1 else None
        entry = {
            "name": objective.name,
            "layer": target.layer if target else None,
            "map": target.map if target else None,
            "y": target.y if target else None,
            "x": target.x if target else None,
            "final": float(run.final[i]),
            "reacted": bool(run.reacted[i]),
            "steps_used": int(run.steps_used[i]),
            "restart": int(run.restart[i]),
            "start": {"kind": run.start_kind[i], "seed": run.start_seeds[i]},
            "label": tile_text(run, i),
        }
        if run.dataset_max is not None:
            entry["dataset_max"] = float(run.dataset_max[i])
            entry["dataset_argmax"] = int(run.dataset_argmax[i])
            entry["beats_dataset_max"] = bool(run.reacted[i]) and float(run.final[i]) > float(run.dataset_max[i])
        if run.examples is not None:
            entry["examples"] = run.examples.to_json(i)
        if run.report is not None:
            entry["quality"] = run.report["targets"][i]
        if run.starts is not None and run.restarts > 1:
            entry["starts"] = [{"seed": run.starts.seeds[r][i], "kind": run.starts.kinds[r][i],
                                "final": float(run.starts.final[r, i]), "reacted": bool(run.starts.reacted[r, i])}
                               for r in range(run.restarts)]
        entry["trajectory"] = _round(run.values[:, i].numpy())
        entry["convergence"] = [{k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in row.items()}
                                for row in convergence(run, i)]
        if include_images:
            entry["image"] = [_round(row, 8) for row in run.images[i, 0].numpy()]
        body["targets"].append(entry)
    return body


