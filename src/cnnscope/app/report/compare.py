"""The comparison section of the demo report (only with `cnnscope demo --compare OTHER`): the
report's model against another checkpoint, layer by layer (CKA) and map by map (matching)."""

from __future__ import annotations

import json

from cnnscope.app.report.page import Figure, ReportContext, Section

FOLDER = "compare"
CAPTIONS = {
    "cka": "Linear CKA of every layer of this model (rows) with every layer of the other (columns), "
           "minibatch estimate with the unbiased HSIC. A bright diagonal: the layers correspond.",
    "cka_diagonal": "CKA of each layer with the same layer of the other model.",
    "matches": "Each unit matched one-to-one to the unit of the other model it correlates with best "
               "(maximum total correlation of the maps' spatial means over the test images); the dashed "
               "line is the threshold for 'has a partner'.",
}


def report_section(ctx: ReportContext) -> Section | None:
    """The comparison with `ctx.compare`, or None when no other model was given."""
    if ctx.compare is None:
        return None
    from cnnscope.app.commands.compare import write_comparison

    options = dict(images=1000, oip_steps=100, best=3, worst=2) if ctx.quick else {}
    written = write_comparison([ctx.model_dir, ctx.compare], ctx.folder / FOLDER, device=ctx.device, seed=ctx.seed,
                               progress=ctx.progress, **options)
    body = json.loads(written["json"].read_text())
    figures = [Figure(f"{FOLDER}/{path.name}", _caption(name)) for name, path in written.items() if name != "json"]
    intro = (f"Do two training runs learn the same maps? This model against {ctx.compare} on "
             f"{body['images']} test images. Numbers: {FOLDER}/compare.json.")
    return Section("Comparison with another run", intro, figures, _facts(body))


def _caption(name: str) -> str:
    if name.startswith("pairs_"):
        return (f"{name[6:]}: matched maps side by side, best first, worst last: each one's OIP (same seed) "
                "and its 9 strongest test images.")
    return CAPTIONS.get(name, name)


def _facts(body: dict) -> dict[str, str]:
    pair = body["pairs"][0]
    facts = {"same-layer CKA": ", ".join(f"{k} {v:.3f}" for k, v in pair["same_layer_cka"].items())}
    for layer, match in pair["matches"].items():
        facts[f"{layer} matching"] = (f"median matched correlation {match['median']:.3f}; "
                                      f"{match['share_with_partner']:.0%} of {min(match['units'])} units with a partner "
                                      f">= {match['threshold']:g}")
    return facts
