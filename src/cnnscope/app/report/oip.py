"""The OIP section of the demo report: the zoos of the two deepest conv layers (articles'
settings and precursor starts), an evolution strip, the ten logits and the coverage figures."""

from __future__ import annotations

from cnnscope.app.report.page import Figure, Section
from cnnscope.data.mnist import to_tensor
from cnnscope.figures.oip import evolution_strip, gallery_picture, zoo_picture
from cnnscope.files import save_image, write_json
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.gallery import gallery_summary
from cnnscope.optvis.oip import (
    OipRun,
    add_dataset_max,
    find_oips,
    logit_objectives,
    map_objectives,
    quality,
    run_to_json,
    strongest,
    subset,
)
from cnnscope.optvis.quality import add_quality
from cnnscope.runtime import default_threads, side_by_side, using_threads

ZOO_RUN = "deep zoo, articles' settings"  # ctx.runs key: the deepest layer's zoo, for the methods section
QUICK_MAPS = 16
GALLERY_MAPS, GALLERY_STARTS = 8, 4


def spread_maps(count: int, wanted: int) -> list[int]:
    """`wanted` maps spread evenly over a layer of `count` (all of them when it has no more)."""
    return list(range(0, count, max(1, count // wanted)))[:wanted]


def report_section(ctx) -> Section:
    """The OIP part of `cnnscope demo`: Conv2D_3 and Conv2D_2 zoos, the ten logits, one
    evolution strip and the quality figures (articles' defaults vs precursor)."""
    with using_threads(default_threads()):  # the CLI's thread policy: the cores free at the start
        quick = bool(ctx.quick)
        settings = AscentSettings(steps=40 if quick else 600)
        test_x, _ = ctx.mnist.images("test")
        test_images = to_tensor(test_x[:500] if quick else test_x)
        deep, middle = _conv_layers(ctx.model)
        runs = _runs(ctx, deep, middle, settings, test_images)
        figures, facts = [], {}
        if deep is not None:
            _deep_zoos(ctx, deep, runs, test_images, figures, facts)
            _gallery(ctx, deep, runs["gallery"], figures, facts)
        if middle is not None:
            _middle_zoo(ctx, middle, runs["middle"], figures)
        _logits(runs["logits"], ctx, figures, facts)
    intro = ("OIPs (optimal input patterns): gradient ascent on the input, from random noise on several length "
             "scales, to maximise the mean activation of a map (articles VII-IX). Values are in the network's "
             "standardised input space; 'dataset max' is the highest mean activation over the test images.")
    if quick:
        intro += " (quick mode: few maps, few steps, 500 test images)"
    return Section("Optimal input patterns (OIPs)", intro, figures, {k: str(v) for k, v in facts.items()})


def _save(ctx, name: str, picture) -> str:
    save_image(ctx.folder / name, picture)
    return name


def _progress(ctx) -> bool:
    return bool(getattr(ctx, "progress", False)) and not ctx.quick


def _runs(ctx, deep: str | None, middle: str | None, settings: AscentSettings, test_images) -> dict[str, OipRun]:
    """Every OIP run of the section, computed side by side (`runtime.side_by_side`), longest first:
    the deepest layer with precursor starts and with the articles' settings, the middle layer, the
    gallery and the logits."""
    model, seed, device, progress = ctx.model, ctx.seed, ctx.device, _progress(ctx)
    jobs = {}
    if deep is not None:
        maps = None if not ctx.quick else spread_maps(model.output_shape(deep)[0], QUICK_MAPS)
        targets = map_objectives(model, deep, maps)
        jobs["robust"] = lambda: find_oips(model, targets, settings, seed=seed, precursor=8 if ctx.quick else 16,
                                           precursor_steps=12, device=device, progress=progress)
        jobs["plain"] = lambda: add_quality(find_oips(model, targets, settings, seed=seed, device=device,
                                                      progress=progress), model, test_images)
    if middle is not None:
        middle_maps = None if not ctx.quick else list(range(min(8, model.output_shape(middle)[0])))
        jobs["middle"] = lambda: find_oips(model, map_objectives(model, middle, middle_maps), settings, seed=seed,
                                           device=device, progress=progress)
    if deep is not None:
        gallery_maps = list(range(min(GALLERY_MAPS, model.output_shape(deep)[0])))
        jobs["gallery"] = lambda: find_oips(model, map_objectives(model, deep, gallery_maps), settings,
                                            restarts=GALLERY_STARTS, seed=seed, device=device, progress=progress)
    jobs["logits"] = lambda: add_dataset_max(find_oips(model, logit_objectives(model), settings, seed=seed,
                                                       device=device), model, test_images)
    return dict(zip(jobs, side_by_side(list(jobs.values()), device=device), strict=True))


def _deep_zoos(ctx, deep: str, runs: dict[str, OipRun], test_images, figures: list, facts: dict) -> None:
    """The deepest conv layer with the articles' settings and with precursor starts, and a strip."""
    model, plain, robust = ctx.model, runs["plain"], runs["robust"]
    steps, targets = plain.settings.steps, plain.objectives
    ctx.runs[ZOO_RUN] = plain
    robust.dataset_max, robust.dataset_argmax = plain.dataset_max, plain.dataset_argmax
    q_plain, q_robust = quality(plain), quality(robust)
    figures.append(Figure(_save(ctx, "oip_zoo_deep.png", zoo_picture(robust)),
                          f"OIPs of all {len(targets)} maps of {deep} (precursor: best of {robust.precursor} starts "
                          f"per map, {steps} steps): each tile is the map number and its final "
                          "mean activation, the pattern in plain viridis and contrast-enhanced; red crossed tiles "
                          "did not react."))
    figures.append(Figure(_save(ctx, "oip_zoo_deep_articles.png", zoo_picture(plain)),
                          f"The same maps with the articles' settings (one start of 4-scale noise, {steps} steps)."))
    first = subset(plain, range(min(16, len(targets))))
    figures.append(Figure(_save(ctx, "oip_zoo_examples.png", zoo_picture(first, columns=4, examples=test_images)), (
        "OIPs next to natural examples: the first 16 maps with the articles' settings, each beside its 9 test images "
        "of highest mean activation. The line under each tile is the OIP's quality report: x = OIP / dataset max, "
        "M = majority success (the map is the largest of its layer at its OIP: green), np = natural-path similarity "
        "(Spearman correlation of the OIP's activation pattern in the earlier conv layers with that of its top "
        "images), o = share of pixels outside the range a real pixel can have.")))
    summary = plain.report["summary"]
    facts.update({
        "majority success, articles' settings": _pct(summary["majority_success_rate"], "of the live maps that reacted"),
        "median natural-path similarity, articles' settings": summary["median_natural_path"],
        "median pixels outside the valid range / activation kept when clipped":
            f"{_pct(summary.get('median_outside'), '')} / {_pct(summary.get('median_clipped_ratio'), '')}",
    })
    best = _strip_index(robust)
    figures.append(Figure(_save(ctx, "oip_evolution.png", evolution_strip(robust, best)),
                          f"How the OIP of {robust.objectives[best].name} emerges, at the articles' log-spaced "
                          "steps (label: step: mean activation)."))
    facts.update({
        f"{deep} maps": q_plain["targets"],
        f"{deep} live maps (fire on a test image)": q_plain.get("live"),
        "reacted, articles' settings": f"{q_plain['reacted']} maps ({q_plain.get('live_with_oip')} of the live maps)",
        f"reacted, precursor ({robust.precursor} starts per map)":
            f"{q_robust['reacted']} maps ({q_robust.get('live_with_oip')} of the live maps)",
        "live maps whose OIP beats the dataset max (precursor)":
            f"{q_robust.get('beats_dataset_max')} ({_pct(q_robust.get('share_live_beating_dataset_max'))})",
        "median OIP / dataset max (precursor)": q_robust.get("median_oip_over_dataset_max"),
    })
    write_json(ctx.folder / "oip_deep.json", run_to_json(robust, model, include_images=False))
    write_json(ctx.folder / "oip_deep_articles.json", run_to_json(plain, model, include_images=False))


def _gallery(ctx, deep: str, run: OipRun, figures: list, facts: dict) -> None:
    """Eight maps of the deepest layer from four starts each: does the same pattern emerge?"""
    maps = [objective.targets[0].map for objective in run.objectives]
    summary = gallery_summary(run)
    threshold = "n/a" if summary["threshold"] is None else f"{summary['threshold']:.2f}"
    figures.append(Figure(_save(ctx, "oip_gallery.png", gallery_picture(run, summary)), (
        f"Maps {maps[0]}-{maps[-1]} of {deep}, each from {run.restarts} different random starts (the articles' series). "
        "When the same pattern emerges from different noise, it belongs to the map. Each row gives the median "
        "shift-tolerant similarity of its starts (best normalised cross-correlation over shifts of up to "
        f"{summary['max_shift']} pixels): 'stable' above {threshold}, the {summary['threshold_rule']}.")))
    facts["gallery: stable / start-dependent maps"] = (f"{summary['stable']} / {summary['start_dependent']} of "
                                                       f"{len(maps)} (median similarity {summary['median_similarity']})")


def _middle_zoo(ctx, middle: str, run: OipRun, figures: list) -> None:
    figures.append(Figure(_save(ctx, "oip_zoo_middle.png", zoo_picture(run)),
                          f"OIPs of the {len(run.objectives)} maps of {middle} (articles' settings)."))


def _logits(run: OipRun, ctx, figures: list, facts: dict) -> None:
    figures.append(Figure(_save(ctx, "oip_logits.png", zoo_picture(run, columns=5, scale=4)),
                          "What each digit looks like to the network: the input that maximises each logit "
                          "(label: digit and logit value)."))
    facts["logits above the dataset max"] = f"{quality(run).get('beats_dataset_max')} of {len(run.objectives)}"


def _pct(share, of: str = "of live maps") -> str:
    return "n/a" if share is None else f"{100 * share:.1f}% {of}".strip()


def _conv_layers(model) -> tuple[str | None, str | None]:
    """The deepest and the second deepest conv layer."""
    convs = model.layers_of_kind("conv")
    deep = convs[-1] if convs else None
    middle = convs[-2] if len(convs) > 1 else None
    return deep, middle


def _strip_index(run: OipRun) -> int:
    """The articles' map 120 when it exists and reacted, else the strongest reacting target."""
    for i, objective in enumerate(run.objectives):
        if objective.targets and objective.targets[0].map == 120 and bool(run.reacted[i]):
            return i
    return strongest(run)
