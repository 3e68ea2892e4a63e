"""The demo report's OIP-methods section."""

import numpy as np
import torch
from PIL import Image

from cnnscope.app.report import ReportContext
from cnnscope.app.report.methods import MAPS, report_methods, report_section
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.oip import find_oips, map_objectives


def test_the_section_shows_the_same_maps_under_every_method(small_model, mnist, tmp_path):
    ctx = ReportContext(model=small_model, config={}, mnist=mnist, model_dir=tmp_path, folder=tmp_path,
                        quick=True, progress=False)
    section = report_section(ctx)
    labels = [m.label for m in report_methods()]
    assert list(section.facts) == labels and len(labels) == 5
    picture = np.asarray(Image.open(tmp_path / "oip_methods.png"))
    # five labelled rows of 16 tiles of 2 x 28 px with 2 px gaps
    assert picture.shape[1] == MAPS * 56 + (MAPS - 1) * 2
    for line in section.facts.values():
        reacted, total = line.split(" react")[0].split(" of ")
        assert 0 <= int(reacted) <= int(total) == MAPS
    # the first row is the articles' algorithm: the same OIPs as find_oips with the same seed
    maps = list(range(0, 128, 8))
    plain = find_oips(small_model, map_objectives(small_model, "Conv2D_3", maps), AscentSettings(steps=40))
    facts_reacted = int(section.facts["pixel (articles)"].split(" of ")[0])
    assert facts_reacted == int(plain.reacted.sum())


def test_the_articles_row_is_cut_from_the_oip_sections_zoo(small_model, mnist, tmp_path):
    """With the OIP section's zoo in the context, the articles' row is scored from it, not run again."""
    from cnnscope.app.report.oip import ZOO_RUN, spread_maps
    from cnnscope.optvis.oip import subset

    maps = spread_maps(128, 32)  # the zoo holds more maps than the section shows, in another order
    zoo = find_oips(small_model, map_objectives(small_model, "Conv2D_3", maps[::-1]), AscentSettings(steps=40))
    ctx = ReportContext(model=small_model, config={}, mnist=mnist, model_dir=tmp_path, folder=tmp_path,
                        quick=True, progress=False, runs={ZOO_RUN: zoo})
    section = report_section(ctx)
    line = section.facts["pixel (articles)"]
    assert line.endswith("from the zoo above")
    shown = [zoo.index_of(f"Conv2D_3:{m}") for m in spread_maps(128, MAPS)]
    assert int(line.split(" of ")[0]) == int(zoo.reacted[shown].sum())
    cut = subset(zoo, shown)
    assert cut.labels == [f"Conv2D_3:{m}" for m in spread_maps(128, MAPS)]
    assert torch.equal(cut.images, zoo.images[shown]) and torch.equal(cut.values, zoo.values[:, shown])
    assert all(not fact.endswith("from the zoo above") for label, fact in section.facts.items()
               if label != "pixel (articles)")
    # another seed's zoo is not the same ascent: computed afresh
    ctx.seed, ctx.runs[ZOO_RUN] = 1, zoo
    assert not report_section(ctx).facts["pixel (articles)"].endswith("from the zoo above")
