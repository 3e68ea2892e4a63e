"""OIP methods side by side (issue 16): the articles' pixel algorithm, pixel + transformation
robustness, the Fourier and MACO parametrisations, each optionally with valid pixels or
precursor starts, on the same targets with the same steps, scored by the quality report.

`compare_methods` is what `benchmarks/oip_methods.py` (all 128 maps of Conv2D_3 and the ten
logits, for the README) and the demo report's "OIP methods" section (16 maps) both run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.oip import OipRun, find_oips
from cnnscope.optvis.quality import quality_report
from cnnscope.optvis.transforms import ROBUST_ROTATE, ROBUST_SHIFT, ROBUST_ZOOM
from cnnscope.runtime import side_by_side

# method name -> the AscentSettings fields it changes
METHODS = {
    "pixel (articles)": {},
    "pixel + robustness": {"shift": ROBUST_SHIFT, "zoom": ROBUST_ZOOM, "rotate": ROBUST_ROTATE},
    "fourier": {"param": "fourier"},
    "maco": {"param": "maco"},
}


@dataclass(frozen=True)
class Method:
    label: str
    fields: dict
    precursor: int = 0


@dataclass
class MethodResult:
    method: Method
    run: OipRun
    summary: dict  # quality_report's summary
    seconds: float | None  # None: the run was made elsewhere and only scored here


def methods(precursor: int = 0, only: Sequence[str] | None = None,
            valid_options: Sequence[bool] = (False, True)) -> list[Method]:
    """Every method of METHODS (or those named in `only`), with and without valid pixels, and
    each also with `precursor` starts when it is > 0."""
    rows = []
    for name, fields in METHODS.items():
        if only and name not in only:
            continue
        for valid in valid_options:
            label = name + (" + valid pixels" if valid else "")
            rows.append(Method(label, {**fields, "valid_pixels": valid}))
            if precursor:
                rows.append(Method(label + f" + precursor {precursor}", {**fields, "valid_pixels": valid}, precursor))
    return rows


def compare_methods(model, targets: Sequence[O.Objective], images: torch.Tensor, values: torch.Tensor,
                    settings: AscentSettings, chosen: Sequence[Method], seed: int = 0,
                    device=None, known: dict[str, OipRun] | None = None) -> list[MethodResult]:
    """Run every method on the same targets (same seed and steps) and score it.

    `values` are the targets' activations on `images` (`optvis.examples.target_values`), for
    the dataset maxima and the natural-path similarity of the quality report. `known` maps a
    method's label to a run already made with it (the same targets, settings and seed, e.g. a
    slice of a zoo): it is scored, not run again. The others run side by side
    (`runtime.side_by_side`: one torch thread each on the CPU), so a method's seconds are its
    wall time on one core.
    """
    known = known or {}

    def timed(method: Method):
        def job() -> tuple[OipRun, float]:
            run_settings = replace(settings, **method.fields).check()
            started = time.perf_counter()
            run = find_oips(model, targets, run_settings, seed=seed, precursor=method.precursor, device=device)
            return run, time.perf_counter() - started
        return job

    todo = [method for method in chosen if method.label not in known]
    made = dict(zip((m.label for m in todo), side_by_side([timed(m) for m in todo], device=device), strict=True))
    results = []
    for method in chosen:
        run, seconds = made.get(method.label, (known.get(method.label), None))
        summary = quality_report(run, model, images, values)["summary"]
        results.append(MethodResult(method, run, summary, seconds))
    return results
