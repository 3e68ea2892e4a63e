"""figures.patterns: the markers sit on the common points; the separating and confusable pictures render."""

from __future__ import annotations

import numpy as np

from cnnscope.analysis import patterns
from cnnscope.data.images import dataset_images
from cnnscope.figures import render
from cnnscope.figures.activations import grid_options
from cnnscope.figures.patterns import (
    RED,
    YELLOW,
    confusable_figure,
    mark_points,
    pattern_figure,
    separating_figure,
)


def test_markers_sit_on_the_tiles_with_common_points(four_vs_nine):
    _, _, _, _, _, results = four_vs_nine
    result = results["Conv2D_3"]
    picture = pattern_figure(result, "viridis", numbers=False)
    assert picture.dtype == np.uint8
    red = (picture == RED).all(axis=2)
    yellow = (picture == YELLOW).all(axis=2)
    distinct = result.distinctive_points(0).sum() + result.distinctive_points(1).sum()
    shared = result.shared_points(0).sum() + result.shared_points(1).sum()
    assert (red.sum() > 0) == (distinct > 0)
    assert (yellow.sum() > 0) == (shared > 0)
    # directly: markers on a grid of the first digit's mean land around the marked node
    columns, factor = grid_options(result.means[0].shape)
    scaled, _ = render.scale_maps(result.means[0], "shared")
    grid, layout = render.map_grid(scaled, "viridis", factor, columns)
    mask = np.zeros(result.means[0].shape, bool)
    mask[17, 1, 2] = True
    marked = mark_points(grid, layout, mask, RED)
    ys, xs = np.nonzero((marked == RED).all(axis=2))
    cy, cx = layout.pixel_center(17, 1, 2)
    assert len(ys) > 10 and abs(ys.mean() - cy) < 2 and abs(xs.mean() - cx) < 2


def test_separating_and_confusable_figures_render(four_vs_nine, mnist):
    model, a, _, idx_a, _, results = four_vs_nine
    for result in results.values():
        picture = separating_figure(result, top=10)
        assert picture.ndim == 3 and picture.shape[0] > 50
    items = patterns.most_confusable(model, a, 9, 4)
    shown = dataset_images(mnist, [int(idx_a[i.position]) for i in items])
    picture = confusable_figure([("4s like 9s", shown, items, 9)])
    assert picture.shape[1] > 4 * 84
