"""figures.activations: activation grids are correct (known map, known pixel), complete and consistent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnscope.data.images import DigitImage, dataset_images, to_batch
from cnnscope.errors import UserError
from cnnscope.figures import render
from cnnscope.figures.activations import layer_figure, layer_figures
from cnnscope.nn.model import CNN, activations
from cnnscope.nn.spec import ModelSpec, Normalization


def lit_model() -> CNN:
    """All weights zero, except: Conv2D_1 map 5 copies the input pixel under its kernel centre,
    and Dense_1 node 37 has bias 2. No input normalisation."""
    model = CNN(ModelSpec.from_lists(normalization=Normalization("none")))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.body.Conv2D_1.weight[5, 0, 1, 1] = 1.0
        model.body.Dense_1.bias[37] = 2.0
    return model.eval()


def one_pixel_image(y: int, x: int) -> DigitImage:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[y, x] = 255
    return DigitImage(pixels, "one pixel")


def test_known_map_lights_up_the_known_pixel_in_the_picture():
    model = lit_model()
    image = one_pixel_image(10, 17)  # valid 3x3 conv: input (10, 17) -> Conv2D_1 (9, 16)
    figure = layer_figure(model, [image], "Conv2D_1", cmap="viridis", scale="shared")
    lut = render.colormap_lut("viridis")
    assert (figure.color_scale.vmin, figure.color_scale.vmax) == (0.0, 1.0)
    y, x = figure.pixel_center(0, 5, 9, 16)
    assert (figure.image[y, x] == lut[-1]).all()  # the brightest colour, exactly there
    for map_index, py, px in ((5, 9, 15), (5, 10, 16), (4, 9, 16), (6, 9, 16), (13, 9, 16)):
        y, x = figure.pixel_center(0, map_index, py, px)
        assert (figure.image[y, x] == lut[0]).all()
    # the whole picture holds exactly one factor x factor block of the top colour
    factor = figure.layout.factor
    top = np.argwhere((figure.image == lut[-1]).all(axis=2))
    grid_top, grid_left = figure.grid_origins[0]
    in_grid = top[(top[:, 0] >= grid_top) & (top[:, 1] >= grid_left)
                  & (top[:, 0] < grid_top + figure.layout.shape[0]) & (top[:, 1] < grid_left + figure.layout.shape[1])]
    assert len(in_grid) == factor * factor


def test_known_pixel_after_pooling_and_in_a_second_panel():
    model = lit_model()
    images = [one_pixel_image(3, 3), one_pixel_image(10, 17)]
    figure = layer_figure(model, images, "Max_Pool_1", cmap="gray", scale="shared")
    # Conv2D_1 (9, 16) -> Max_Pool_1 (4, 8); the second panel holds the second image
    y, x = figure.pixel_center(1, 5, 4, 8)
    assert (figure.image[y, x] == 255).all()
    y, x = figure.pixel_center(0, 5, 4, 8)
    assert (figure.image[y, x] == 0).all()
    y, x = figure.pixel_center(0, 5, 1, 1)  # first image: (3, 3) -> (2, 2) -> (1, 1)
    assert (figure.image[y, x] == 255).all()


def test_dense_layer_shows_every_node_and_the_lit_one():
    model = lit_model()
    figure = layer_figure(model, [one_pixel_image(5, 5)], "Dense_1", cmap="viridis", numbers=True)
    assert figure.layout.count == 100 and figure.layout.rows == 13
    assert len(figure.stats[0]["nodes"]) == 100
    assert figure.stats[0]["nodes"][37]["value"] == 2.0
    y, x = figure.pixel_center(0, 37)
    assert (figure.image[y + 6, x + 6] == render.colormap_lut("viridis")[-1]).all()


def test_all_layers_from_one_forward_pass(small_model, mnist):
    calls = {"Conv2D_1": 0, "Dense_2": 0}
    hooks = [getattr(small_model.body, name).register_forward_hook(
        lambda module, inputs, output, name=name: calls.__setitem__(name, calls[name] + 1)) for name in calls]
    images = dataset_images(mnist, [0, 1])
    figures = layer_figures(small_model, images)
    for hook in hooks:
        hook.remove()
    assert calls == {"Conv2D_1": 1, "Dense_2": 1}
    assert list(figures) == ["Conv2D_1", "Max_Pool_1", "Conv2D_2", "Max_Pool_2", "Conv2D_3", "Dense_1", "Dense_2"]
    for name, figure in figures.items():
        shape = small_model.output_shape(name)
        assert figure.layout.count == shape[0] and len(figure.grid_origins) == 2
        assert figure.layout.columns == 8
        assert figure.image.dtype == np.uint8 and figure.image.shape[2] == 3


def test_stats_are_the_layer_numbers(small_model, mnist):
    images = dataset_images(mnist, [7])
    figure = layer_figure(small_model, images, "Conv2D_2", scale="per_map")
    values = activations(small_model, to_batch(images), "Conv2D_2")["Conv2D_2"][0].numpy()
    stats = figure.stats[0]
    assert stats["shape"] == [64, 11, 11] and len(stats["maps"]) == 64
    for entry in stats["maps"][::9]:
        m = values[entry["map"]]
        assert entry["min"] == pytest.approx(m.min(), abs=1e-5)
        assert entry["max"] == pytest.approx(m.max(), abs=1e-5)
        assert entry["mean"] == pytest.approx(m.mean(), abs=1e-5)
    assert stats["label"] == int(mnist.test_y[7]) and stats["index"] == 7
    assert stats["predicted"] == int(np.argmax(stats["probabilities"]))


def test_shared_scale_spans_all_images(small_model, mnist):
    images = dataset_images(mnist, [3, 4, 5])
    values = activations(small_model, to_batch(images), "Conv2D_3")["Conv2D_3"].numpy()
    shared = layer_figure(small_model, images, "Conv2D_3", scale="shared")
    assert shared.color_scale.vmin == pytest.approx(values.min())
    assert shared.color_scale.vmax == pytest.approx(values.max())
    per_map = layer_figure(small_model, images, "Conv2D_3", scale="per_map")
    assert (per_map.color_scale.vmin, per_map.color_scale.vmax) == (0.0, 1.0)
    assert not np.array_equal(shared.image, per_map.image)


def test_columns_option_and_flatten_layout(small_model, mnist):
    images = dataset_images(mnist, [0])
    figure = layer_figure(small_model, images, "Conv2D_1", columns=4)
    assert figure.layout.columns == 4 and figure.layout.rows == 8
    flat = layer_figure(small_model, images, "Flatten")
    assert flat.layout.count == 1152 and flat.layout.columns == 32


def test_bad_requests_are_user_errors(small_model, mnist):
    images = dataset_images(mnist, [0])
    with pytest.raises(UserError, match="Conv2D_1, Max_Pool_1"):
        layer_figure(small_model, images, "Conv9")
    with pytest.raises(UserError, match="per_map"):
        layer_figure(small_model, images, "Conv2D_1", scale="log")
    with pytest.raises(UserError, match="at most"):
        layer_figure(small_model, images * 13, "Conv2D_1")
