"""render: colour maps, grids with separators, dense cells, scales, colour bar, markers, overlay."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from cnnscope.errors import UserError
from cnnscope.figures import render


def test_colorize_matches_matplotlib_exactly():
    values = np.random.default_rng(0).normal(size=(40, 40))
    for cmap in ("viridis", "jet", "binary", "magma"):
        scaled = (values - values.min()) / (values.max() - values.min())
        expected = (matplotlib.colormaps[cmap](scaled)[..., :3] * 255 + 0.5).astype(np.uint8)
        assert np.array_equal(render.colorize(values, cmap), expected)


def test_unknown_colour_map_is_a_user_error():
    with pytest.raises(UserError, match="viridis"):
        render.colorize(np.zeros((2, 2)), "rainbowish")


def test_map_grid_shape_and_tile_placement():
    count, size, factor = 32, 26, 2
    maps = np.stack([np.full((size, size), i / (count - 1)) for i in range(count)])  # map i has value i/31
    picture, layout = render.map_grid(maps, "viridis", factor=factor, columns=8, separator=1)
    tile = size * factor
    assert picture.shape == (4 * tile + 3, 8 * tile + 7, 3)
    lut = render.colormap_lut("viridis")
    for index in range(count):
        row, col = divmod(index, 8)
        top, left = row * (tile + 1), col * (tile + 1)
        assert layout.origin(index) == (top, left)
        expected = lut[min(int(index / (count - 1) * len(lut)), len(lut) - 1)]
        assert (picture[top:top + tile, left:left + tile] == expected).all()
    # separator lines between tiles
    assert (picture[tile, :] == render.SEPARATOR).all()
    assert (picture[:, tile] == render.SEPARATOR).all()


def test_one_hot_pixel_lands_where_the_layout_says():
    maps = np.zeros((12, 5, 5))
    maps[7, 3, 1] = 1.0
    picture, layout = render.map_grid(maps, "gray", factor=4, columns=4)
    y, x = layout.pixel_center(7, 3, 1)
    assert (picture[y, x] == 255).all()
    top, left, bottom, right = layout.pixel_box(7, 3, 1)
    assert (picture[top:bottom, left:right] == 255).all()
    bright = np.argwhere((picture == 255).all(axis=2) & ~(picture == render.SEPARATOR).all(axis=2))
    assert len(bright) == 16  # exactly the 4x4 block, nothing else is white


def test_dense_nodes_all_shown_when_not_a_multiple_of_8():
    nodes = np.linspace(0.0, 1.0, 100)
    picture, layout = render.map_grid(nodes, "viridis", factor=10, columns=8)
    assert layout.count == 100 and layout.rows == 13  # 12 full rows + 4 nodes
    assert picture.shape == (13 * 10 + 12, 8 * 10 + 7, 3)
    lut = render.colormap_lut("viridis")
    y, x = layout.pixel_center(99)
    assert (picture[y, x] == lut[-1]).all()  # the last node (value 1) is drawn
    y, x = render.tile_origin(100, (10, 10), 8, 1)
    assert (picture[y:, x:] == 255).all()  # the unused end of the last row is blank


def test_shared_scale_vs_per_map_scale():
    maps = np.stack([np.linspace(0, 1, 16).reshape(4, 4), np.linspace(0, 10, 16).reshape(4, 4)])
    shared, color_scale = render.scale_maps(maps, "shared")
    assert (color_scale.vmin, color_scale.vmax) == (0.0, 10.0)
    assert shared[0].max() == pytest.approx(0.1) and shared[1].max() == pytest.approx(1.0)
    per_map, _ = render.scale_maps(maps, "per_map")
    assert per_map[0].max() == pytest.approx(1.0) and per_map[1].max() == pytest.approx(1.0)
    assert np.allclose(per_map[0], per_map[1])
    fixed, color_scale = render.scale_maps(maps, "shared", vmin=0.0, vmax=20.0)
    assert fixed[1].max() == pytest.approx(0.5) and color_scale.vmax == 20.0


def test_standardize_is_the_articles_view():
    values = np.random.default_rng(1).normal(3.0, 2.0, size=(3, 8, 8))
    scaled, color_scale = render.scale_maps(values, "standardize")
    assert (color_scale.vmin, color_scale.vmax) == (-2.0, 2.0)
    # articles: (x - mean) / std * 64 + 128, clipped to 0..255  ==  our [0, 1] scale x 256
    articles = np.clip((values - values.mean(axis=(1, 2), keepdims=True)) / values.std(axis=(1, 2), keepdims=True) * 64 + 128, 0, 255)
    assert np.allclose(np.minimum(scaled * 256, 255), articles)
    constant, _ = render.scale_maps(np.ones((2, 3, 3)), "standardize")
    assert np.allclose(constant, 0.5)  # a dead map stays mid-scale, no division by zero


def test_numbers_are_written_into_the_tiles():
    maps = np.zeros((16, 3, 3))
    plain, layout = render.map_grid(maps, "gray", factor=19)
    numbered, _ = render.map_grid(maps, "gray", factor=19, numbers=True)
    changed = np.argwhere((plain != numbered).any(axis=2))
    assert len(changed) > 0
    top, left = layout.origin(15)
    assert (plain[top:top + 14, left:left + 20] != numbered[top:top + 14, left:left + 20]).any()
    # only the corners change, the bottom half of each tile stays untouched
    assert (plain[top + 40:top + 57, left:left + 57] == numbered[top + 40:top + 57, left:left + 57]).all()


def test_stack_reports_offsets():
    a = np.zeros((10, 20, 3), np.uint8)
    b = np.full((30, 5, 3), 9, np.uint8)
    picture, offsets = render.stack([a, b], axis="h", gap=4)
    assert picture.shape == (30, 29, 3) and offsets == [(0, 0), (0, 24)]
    assert (picture[0:30, 24:29] == 9).all()
    picture, offsets = render.stack([a, b], axis="v", gap=2, align="center")
    assert picture.shape == (42, 20, 3) and offsets == [(0, 0), (12, 7)]


def test_colorbar_runs_from_high_on_top_to_low():
    bar = render.colorbar(render.ColorScale("shared", 0.0, 5.0, "activation"), "viridis", length=100)
    lut = render.colormap_lut("viridis")
    column = bar[:, 5]
    top_hits = np.flatnonzero((column == lut[-1]).all(axis=1))
    bottom_hits = np.flatnonzero((column == lut[0]).all(axis=1))
    assert len(top_hits) and len(bottom_hits) and top_hits.max() < bottom_hits.min()


def test_circles_are_drawn_around_the_centre():
    canvas = np.zeros((40, 40, 3), np.uint8)
    marked = render.draw_circles(canvas, [(20, 20)], radius=8, color=(255, 0, 0), width=2)
    red = np.argwhere((marked == (255, 0, 0)).all(axis=2))
    distance = np.hypot(red[:, 0] - 20, red[:, 1] - 20)
    assert len(red) > 20 and distance.min() >= 5.5 and distance.max() <= 9.0
    assert (marked[20, 20] == 0).all()


def test_overlay_keeps_the_plain_digit_where_heat_is_zero():
    image = np.zeros((4, 4))
    image[1, 1] = 1.0
    heat = np.zeros((4, 4))
    heat[2, 2] = 1.0
    out = render.overlay(image, heat, "jet", alpha=0.8, factor=2)
    assert out.shape == (8, 8, 3)
    assert (out[2, 2] == 0).all()  # ink: dark
    assert (out[0, 0] == 255).all()  # background: white
    assert not (out[4, 4] == 255).all()  # the hot pixel is coloured
