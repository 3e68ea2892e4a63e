"""The OIP-methods section of the demo report: the same 16 maps of the deepest conv layer under
the articles' pixel algorithm, pixel + robustness (with precursor starts), Fourier and MACO,
with the quality figures of each (the README's table, for 16 maps instead of 128)."""

from __future__ import annotations

from cnnscope.app.report.oip import ZOO_RUN, spread_maps
from cnnscope.app.report.page import Figure, Section
from cnnscope.data.mnist import to_tensor
from cnnscope.figures.oip import methods_picture
from cnnscope.files import save_image
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.examples import target_values
from cnnscope.optvis.methods import METHODS, Method, compare_methods
from cnnscope.optvis.oip import map_objectives, subset
from cnnscope.runtime import default_threads, using_threads

MAPS = 16


def report_methods() -> list[Method]:
    """The four methods, and the README's recommendation (robustness + 16 precursor starts)."""
    chosen = [Method(name, fields) for name, fields in METHODS.items()]
    robust = METHODS["pixel + robustness"]
    return [*chosen[:2], Method("pixel + robustness + precursor 16", robust, 16), *chosen[2:]]


def report_section(ctx) -> Section | None:
    model, quick = ctx.model, bool(ctx.quick)
    convs = model.layers_of_kind("conv")
    if not convs:
        return None
    deep = convs[-1]
    count = model.output_shape(deep)[0]
    maps = spread_maps(count, MAPS)
    test_x, _ = ctx.mnist.images("test")
    images = to_tensor(test_x[:500] if quick else test_x)
    targets = map_objectives(model, deep, maps)
    settings = AscentSettings(steps=40 if quick else 600)
    with using_threads(default_threads()):
        values = target_values(model, targets, images)
        results = compare_methods(model, targets, images, values, settings, report_methods(), seed=ctx.seed,
                                  device=ctx.device, known=_from_the_zoo(ctx, targets, settings))
    save_image(ctx.folder / "oip_methods.png",
               methods_picture([(r.method.label, r.run) for r in results], range(len(maps))))
    facts = {r.method.label: _line(r) for r in results}
    intro = (f"The same {len(maps)} maps of {deep} (maps {maps[0]}, {maps[1] if len(maps) > 1 else ''}, ... "
             f"{maps[-1]}) under each OIP method, same seed and steps. Per method: maps that react, live maps "
             "above their dataset maximum, median OIP / dataset max, median natural-path similarity (Spearman "
             "correlation of the OIP's activation pattern in the earlier layers with that of the map's top-9 "
             "test images), majority success (the map is the strongest of its layer at its OIP) and time (the "
             "methods run side by side, each on one core).")
    caption = ("Rows: methods; columns: the same maps (contrast-enhanced). Robustness: shift, zoom and rotation "
               "sized for 28 px; Fourier: 1/f spectrum; MACO: the MNIST amplitude spectrum, phase optimised.")
    return Section("OIP methods compared", intro, [Figure("oip_methods.png", caption)], facts)


def _from_the_zoo(ctx, targets, settings: AscentSettings) -> dict:
    """The articles' row cut from the OIP section's zoo when that holds these targets, run with
    the same settings and seed (it is the same ascent from the same starts)."""
    zoo = ctx.runs.get(ZOO_RUN)
    if zoo is None or zoo.settings != settings or zoo.seed != ctx.seed or zoo.precursor or zoo.restarts != 1:
        return {}
    names = [t.name for t in targets]
    if not set(names) <= set(zoo.labels):
        return {}
    return {report_methods()[0].label: subset(zoo, [zoo.index_of(name) for name in names])}


def _line(result) -> str:
    s = result.summary

    def pct(share):
        return "n/a" if share is None else f"{100 * share:.0f}%"

    return (f"{s['reacted']} of {s['targets']} react; {pct(s['share_live_above_dataset_max'])} of live maps above "
            f"dataset max; median ratio {s['median_ratio']}; natural path {s['median_natural_path']}; "
            f"majority {pct(s['majority_success_rate'])}; "
            + ("from the zoo above" if result.seconds is None else f"{result.seconds:.1f} s"))
