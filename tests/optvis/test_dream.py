"""DeepDream library: photos, the three dream modes, detail re-injection, jitter, tiles, colour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnscope.app.parsing import objective_from_text
from cnnscope.data.photos import (
    Photo,
    load_photo,
    open_image,
    photo_from_image,
    rgb_to_ycbcr,
    sample_image,
)
from cnnscope.errors import UserError
from cnnscope.figures.dream import gif_frames, render_panel
from cnnscope.optvis.ascent import AscentSettings, ascend
from cnnscope.optvis.dream import (
    DreamSettings,
    adjust_distribution,
    check_objective,
    check_sizes,
    dream,
    octave_sizes,
    resize,
    tile_layout,
)
from cnnscope.optvis.objectives import channel, layer, logit, objective_values
from helpers import png_with_size


@pytest.fixture(scope="module")
def flower() -> Photo:
    """The scikit-learn flower photo, small (96 x 64) to keep the tests fast."""
    return load_photo(sample="flower", max_side=96)


@pytest.fixture(scope="module")
def busy_map(small_model_dir, flower) -> int:
    """The Conv2D_3 map of the small model that reacts most to the 28 x 28 flower."""
    from cnnscope.nn.checkpoint import load_checkpoint
    from cnnscope.nn.model import per_image_standardize

    model, _ = load_checkpoint(small_model_dir)
    x = per_image_standardize(resize(flower.luminance, (28, 28)))
    with torch.no_grad():
        means = model.activations(x, ["Conv2D_3"], normalize=False)["Conv2D_3"].mean(dim=(-2, -1))[0]
    return int(means.argmax())


def zero_objective():
    """An objective whose gradient is exactly zero everywhere."""
    return 0.0 * channel("Conv2D_3", 0)


# ---- photos -------------------------------------------------------------------------------
def test_sample_photo_is_the_scikit_learn_one():
    from sklearn.datasets import load_sample_image

    for name in ("flower", "china"):
        assert np.array_equal(np.asarray(sample_image(name)), load_sample_image(f"{name}.jpg"))


def test_large_photo_is_resized_with_a_note(flower):
    assert flower.size == (64, 96)
    assert flower.original_size == (427, 640)
    assert "640x427" in flower.resize_note and "96x64" in flower.resize_note
    full = load_photo(sample="flower")  # 640 <= the default maximum: kept as it is
    assert full.size == (427, 640) and full.resize_note is None


def test_colour_round_trip_is_exact_on_uint8():
    full = load_photo(sample="china")
    assert full.is_color
    assert np.array_equal(np.asarray(full.original()), np.asarray(sample_image("china")))
    ycc = np.asarray(full.original().convert("YCbCr")).astype(int)  # Pillow's own YCbCr agrees
    assert np.abs(ycc - np.asarray(sample_image("china").convert("YCbCr")).astype(int)).max() == 0


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "1", "CMYK"])
def test_every_pillow_mode_loads(tmp_path, mode):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    if mode == "I;16":
        image = Image.fromarray(gray.astype(np.uint16) * 257)
        assert image.mode.startswith("I;16")
    elif mode in ("L", "1", "LA"):
        image = Image.fromarray(gray).convert(mode)
    else:
        image = Image.fromarray(np.stack([gray, 255 - gray, gray // 2], axis=2)).convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    image.save(tmp_path / f"x{suffix}")
    photo = load_photo(tmp_path / f"x{suffix}")
    assert photo.size == (40, 50)
    assert float(photo.luminance.min()) >= 0 and float(photo.luminance.max()) <= 1
    assert photo.is_color == (mode in ("RGBA", "P", "CMYK"))
    if mode == "I;16":  # 16-bit depth kept: same picture as the 8-bit one
        assert torch.allclose(photo.luminance[0, 0], torch.from_numpy(gray / 255.0).float(), atol=1e-6)


def test_gray_photo_gives_gray_output(small_model, flower):
    gray = photo_from_image(flower.original(), "flower", color=False)
    assert not gray.is_color
    result = dream(small_model, gray, channel("Conv2D_3", 1), DreamSettings(steps=2, rounds=1))
    assert gray.compose(result.luminance).mode == "L"



@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"this is not a picture", "not a readable image"),
    (png_with_size(0, 0), "not a readable image"),
    (png_with_size(20000, 20000), "too large"),
    (png_with_size(8000, 6000), "limit is 40 megapixels"),
])
def test_bad_image_files(tmp_path, content, expected):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(UserError, match=expected):
        open_image(path)


def test_too_small_and_missing_images(tmp_path):
    Image.new("L", (20, 40)).save(tmp_path / "small.png")
    with pytest.raises(UserError, match="at least 28x28"):
        load_photo(tmp_path / "small.png")
    with pytest.raises(UserError, match="does not exist"):
        load_photo(tmp_path / "missing.png")
    with pytest.raises(UserError, match="not a file"):
        load_photo(tmp_path)
    with pytest.raises(UserError, match="unknown sample"):
        load_photo(sample="rose")
    with pytest.raises(UserError, match="not both or neither"):
        load_photo()


# ---- the articles' downscale dream --------------------------------------------------------
def test_downscale_value_rises_round_to_round(small_model, flower, busy_map):
    objective = channel("Conv2D_3", busy_map)
    result = dream(small_model, flower, objective, DreamSettings(width=0))
    assert len(result.stages) == 4 and all(stage.size == (28, 28) for stage in result.stages)
    for stage in result.stages:
        assert stage.value_end > stage.value_start  # the ascent raises it within each round
    starts = [stage.value_start for stage in result.stages]
    assert all(b > a for a, b in zip(starts, starts[1:], strict=False))  # and it carries to the next round
    assert result.values[-1] > 2 * result.values[0]
    # the value the engine reports is the one of the photo as the next round sees it
    x = resize(result.raw, (28, 28))
    from cnnscope.nn.model import per_image_standardize

    assert float(objective_values(objective, small_model, per_image_standardize(x))) > result.values[0]


def test_dream_changes_the_image_more_than_a_no_op(small_model, flower, busy_map):
    settings = DreamSettings(width=0)
    dreamed = dream(small_model, flower, channel("Conv2D_3", busy_map), settings)
    no_op = dream(small_model, flower, channel("Conv2D_3", busy_map), DreamSettings(steps=0, width=0))
    flat = dream(small_model, flower, zero_objective(), settings)  # steps run, but nothing to climb
    change = (dreamed.raw - flower.luminance).abs().mean()
    assert float((no_op.raw - flower.luminance).abs().max()) == 0.0
    # (only float rounding: the articles' per-image standardisation after each step re-standardises)
    assert float((flat.raw - flower.luminance).abs().max()) < 1e-6
    assert float(change) > 0.02  # ~5 grey levels on average over the whole photo
    # the change is where the objective says: the dream raises the map on the dreamed photo
    assert dreamed.values[-1] > no_op.values[-1]


@pytest.mark.parametrize("mode, extra", [
    ("downscale", {}),
    ("octaves", {"px": 1.0}),
    ("native", {"tile": 28}),
    ("native", {}),
])
def test_zero_steps_restore_the_photo_exactly(small_model, flower, mode, extra):
    settings = DreamSettings(mode=mode, steps=0, width=0, **extra)
    result = dream(small_model, flower, channel("Conv2D_3", 3), settings)
    assert torch.equal(result.raw, flower.luminance)
    assert torch.equal(result.luminance, flower.luminance)
    assert np.array_equal(np.asarray(flower.compose(result.luminance)), np.asarray(flower.original()))


def test_final_adjustment_of_the_value_distribution():
    rng = torch.Generator().manual_seed(0)
    image = 0.3 + 0.05 * torch.randn(1, 1, 50, 60, generator=rng)
    adjusted = adjust_distribution(image, 0.1)
    assert abs(float(adjusted.mean()) - 0.5) < 1e-3
    assert abs(float(adjusted.std(unbiased=False)) - 0.1) < 1e-3
    assert torch.equal(adjust_distribution(image, 0), image.clamp(0, 1))
    assert torch.equal(adjust_distribution(torch.full((1, 1, 4, 4), 0.2), 0.25), torch.full((1, 1, 4, 4), 0.5))


def test_panel_and_gif_frames(small_model, flower, busy_map):
    result = dream(small_model, flower, channel("Conv2D_3", busy_map), DreamSettings(steps=5, rounds=2))
    panel = render_panel(flower, result, height=80)
    assert panel.dtype == np.uint8 and panel.shape[2] == 3
    assert panel.shape[0] > 80 and panel.shape[1] > 80 * 3  # title + 5 pictures side by side
    frames = gif_frames(flower, result)
    assert len(frames) == 3 and frames[0].shape == (64, 96, 3)
    assert np.array_equal(frames[0], np.asarray(flower.compose(adjust_distribution(flower.luminance, 0.25))))
    assert result.pattern.shape == (28, 28) and result.blurred.shape == (64, 96)


# ---- colour -------------------------------------------------------------------------------
def test_colour_dream_keeps_the_chroma(small_model, flower, busy_map):
    result = dream(small_model, flower, channel("Conv2D_3", busy_map), DreamSettings())
    output = flower.compose(result.luminance)
    assert output.mode == "RGB"
    rgb = np.asarray(output).astype(np.float32) / 255.0
    y, cb, cr = rgb_to_ycbcr(rgb.transpose(2, 0, 1))
    unclipped = ((rgb > 0) & (rgb < 1)).all(axis=2)
    assert unclipped.mean() > 0.8
    # chroma equals the input's up to the rounding of RGB to 8 bits (<= 1/255)
    assert np.abs(cb - flower.chroma[0])[unclipped].max() < 1.0 / 255
    assert np.abs(cr - flower.chroma[1])[unclipped].max() < 1.0 / 255
    # while the luminance is the dream's
    assert np.abs(y - result.luminance[0, 0].numpy())[unclipped].max() < 1.0 / 255
    assert np.abs(y - flower.luminance[0, 0].numpy()).mean() > 0.02


# ---- octaves, jitter, native tiles --------------------------------------------------------
def test_octave_sizes_are_geometric_and_checked():
    assert octave_sizes(400, 600, 3, 1.4, 4) == [(51, 77), (71, 107), (100, 150)]
    assert octave_sizes(64, 96, 1, 1.4, 1) == [(64, 96)]
    with pytest.raises(UserError, match="smallest octave would be 24x16"):
        check_sizes(DreamSettings(mode="octaves", octaves=3, px=2).resolved(), 64, 96)
    with pytest.raises(UserError, match="use a larger --px"):
        check_sizes(DreamSettings(mode="octaves", px=1).resolved(), 3000, 3000)


def test_octaves_raise_the_value_at_each_size(small_model, flower):
    settings = DreamSettings(mode="octaves", octaves=2, px=1.5, steps=10)
    result = dream(small_model, flower, layer("Conv2D_3"), settings)
    assert [stage.size for stage in result.stages] == [(30, 46), (43, 64)]
    assert all(stage.value_end > stage.value_start for stage in result.stages)
    assert result.luminance.shape == flower.luminance.shape


def test_roll_jitter_leaves_the_image_unchanged_when_the_gradient_is_zero(small_model, flower):
    x = torch.randn(2, 1, 40, 52, generator=torch.Generator().manual_seed(1))
    settings = AscentSettings(steps=5, jitter=7, standardize=False, snapshot_steps=())
    out = ascend(small_model, x, zero_objective(), settings)
    assert torch.equal(out.images, x)
    result = dream(small_model, flower, zero_objective(), DreamSettings(mode="octaves", px=1, jitter=7, steps=5, width=0))
    assert torch.equal(result.raw, flower.luminance)


def test_jitter_is_seeded(small_model, flower):
    settings = DreamSettings(mode="octaves", octaves=1, px=1, steps=4, jitter=5, seed=3)
    first = dream(small_model, flower, layer("Conv2D_2"), settings)
    again = dream(small_model, flower, layer("Conv2D_2"), settings)
    other = dream(small_model, flower, layer("Conv2D_2"), DreamSettings(mode="octaves", octaves=1, px=1, steps=4,
                                                                          jitter=5, seed=4))
    assert torch.equal(first.luminance, again.luminance)
    assert not torch.equal(first.luminance, other.luminance)


@pytest.mark.parametrize("height, width, tile", [(64, 96, 28), (28, 28, 28), (100, 57, 56), (250, 300, 112)])
def test_tiles_cover_the_image_without_gaps(height, width, tile):
    rng = np.random.default_rng(height)
    for offset in [(0, 0), (tile - 1, tile - 1), tuple(int(v) for v in rng.integers(0, tile, 2))]:
        (top, bottom, left, right), origins = tile_layout(height, width, tile, offset)
        assert (top + height + bottom) % tile == 0 and (left + width + right) % tile == 0
        assert 0 <= bottom < tile and 0 <= right < tile
        count = np.zeros((top + height + bottom, left + width + right), dtype=int)
        for y, x in origins:
            count[y:y + tile, x:x + tile] += 1
        assert (count == 1).all()  # the padded image is covered exactly once, so the image too
    with pytest.raises(ValueError):
        tile_layout(64, 96, 28, (28, 0))


def test_native_tiles_are_seeded_and_move_each_round(small_model, flower):
    settings = DreamSettings(mode="native", tile=28, rounds=2, steps=3, seed=5)
    first = dream(small_model, flower, channel("Conv2D_2", 1), settings)
    again = dream(small_model, flower, channel("Conv2D_2", 1), settings)
    assert torch.equal(first.luminance, again.luminance)
    assert [stage.tiles for stage in first.stages][0] >= 6  # 96 x 64 in 28 x 28 tiles: at least 4 x 3
    assert first.tile == 28 and first.luminance.shape == flower.luminance.shape
    whole = dream(small_model, flower, channel("Conv2D_2", 1), DreamSettings(mode="native", rounds=1, steps=3))
    assert whole.tile == 0 and whole.stages[0].tiles == 1


# ---- objectives and settings --------------------------------------------------------------
def test_objectives_from_text(small_model):
    assert objective_from_text().name == "Conv2D_3:56"
    assert objective_from_text(["Conv2D_3:1", "Conv2D_2:4,5"]).layers == ("Conv2D_3", "Conv2D_2")
    assert objective_from_text(layer="Conv2D_1").name == "Conv2D_1"
    assert set(objective_from_text(layers="Conv2D_2:1.0,Conv2D_3:2.0").layers) == {"Conv2D_2", "Conv2D_3"}
    with pytest.raises(UserError, match="one objective"):
        objective_from_text(["Conv2D_3:1"], layer="Conv2D_2")
    with pytest.raises(UserError, match="unknown layer 'Conv9'"):
        check_objective(small_model, objective_from_text(["Conv9:1"]), "downscale")
    with pytest.raises(UserError, match="out of range"):
        check_objective(small_model, objective_from_text(["Conv2D_3:128"]), "downscale")


def test_dense_objectives_only_at_28x28(small_model, flower):
    for mode in ("octaves", "native"):
        with pytest.raises(UserError, match="Dense_1 is not a conv/pool layer"):
            check_objective(small_model, layer("Dense_1"), mode)
        with pytest.raises(UserError, match="Dense_2 is not a conv/pool layer"):
            dream(small_model, flower, logit(3), DreamSettings(mode=mode, steps=1))
    result = dream(small_model, flower, logit(3), DreamSettings(steps=10, rounds=2))  # downscale: fine
    assert result.values[-1] > result.values[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -1}, "steps must be a whole number >= 0"),
    ({"rounds": 0}, "rounds must be a whole number >= 1"),
    ({"octaves": 0}, "octaves must be"),
    ({"octave_scale": 1.0}, "octave scale must be > 1"),
    ({"octave_scale": 0.7}, "octave scale must be > 1"),
    ({"octave_scale": -2.0}, "octave scale must be > 0"),
    ({"px": 0.0}, "px must be > 0"),
    ({"px": 0.5}, "px .* must be >= 1"),
    ({"epsilon": 0.0}, "epsilon must be > 0"),
    ({"tile": 30}, "multiple of 28"),
    ({"jitter": -1}, "jitter must be"),
    ({"width": -0.1}, "width must be >= 0"),
    ({"mode": "dreamy"}, "unknown dream mode"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(UserError, match=message):
        DreamSettings(**kwargs).resolved()


def test_report_section_quick(small_model, tmp_path):
    from cnnscope.app.report import ReportContext
    from cnnscope.app.report.dream import report_section

    ctx = ReportContext(model=small_model, config={}, mnist=None, model_dir=tmp_path, folder=tmp_path, quick=True)
    section = report_section(ctx)
    assert [f.path for f in section.figures][0] == "dream_Conv2D_3_56.png"
    assert section.figures[2].path == "dream_octaves.png" and len(section.figures) == 3
    for figure in section.figures:
        picture = Image.open(tmp_path / figure.path)
        assert picture.width > 300 and picture.height > 100
        assert "Objective" in figure.caption
    assert "photo" in section.facts
