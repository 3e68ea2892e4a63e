"""Parametrisations: Fourier and MACO images are real images of the right shape with the intended
spectrum magnitude; valid pixels stay inside the range of real pixels; every parametrisation
serves OIPs of maps, nodes and logits and dreams; the CLI flags."""

from __future__ import annotations

import json

import pytest
import torch

from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings, ascend
from cnnscope.optvis.callbacks import Callback
from cnnscope.optvis.dream import DreamSettings, dream
from cnnscope.optvis.oip import find_oips, logit_objectives, map_objectives
from cnnscope.optvis.parametrizations import (
    VALID_GAIN,
    Fourier,
    Pixel,
    ValidPixels,
    amplitude_spectrum,
    fourier_scale,
    frequencies,
    make_parametrization,
    mnist_magnitude,
    model_normalization,
    resample_magnitude,
    valid_range,
)
from cnnscope.optvis.starts import multiscale_noise
from helpers import run_cli


class Images(Callback):
    """Keeps a copy of the images at every step."""

    def __init__(self):
        self.images = []

    def __call__(self, step, images, values):
        self.images.append(images.detach().clone())


def test_fourier_round_trip_and_shape_for_even_and_odd_sizes():
    for size in ((28, 28), (27, 31)):
        images = multiscale_noise(3, size, scales=(3, 7), factors=(0.5, 0.5), seed=1)
        fourier = Fourier(decay=1.0)
        params = fourier.params(images)
        assert params.shape == (3, 1, size[0], size[1] // 2 + 1, 2) and params.dtype == torch.float32
        back = fourier(params)
        assert back.shape == images.shape and not back.is_complex()
        assert torch.allclose(back, images, atol=1e-5)


def test_fourier_image_spectrum_is_white_parameters_times_one_over_frequency():
    fourier = Fourier(decay=1.0)
    fourier.params(torch.zeros(1, 1, 28, 28))
    params = torch.randn(400, 1, 28, 15, 2, generator=torch.Generator().manual_seed(0))
    image = fourier(params)
    magnitude = torch.fft.rfft2(image, norm="ortho").abs().mean(dim=(0, 1))
    f = frequencies(28, 28)
    low, high = (f > 0.03) & (f < 0.08), f > 0.4
    expected = fourier_scale(28, 28)
    # the image's spectrum falls as 1/f: its ratio low/high band is the scale's, within 10%
    ratio = (magnitude[low].mean() / magnitude[high].mean()) / (expected[low].mean() / expected[high].mean())
    assert 0.9 < float(ratio) < 1.1
    assert float(expected[low].mean() / expected[high].mean()) > 5  # and that is far from white
    assert float(fourier_scale(28, 28).pow(2).mean()) == pytest.approx(1.0, rel=1e-5)


def test_mnist_amplitude_spectrum_of_hand_made_images():
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    stripes = (0.5 + 0.5 * torch.cos(2 * torch.pi * 3 * xx / 28))[None, None].expand(4, 1, 28, 28)
    magnitude = amplitude_spectrum(stripes)
    assert magnitude.shape == (28, 15)
    assert int(magnitude.flatten().argmax()) == 3  # row 0, column 3: three cycles along x
    image = torch.fft.irfft2(magnitude, s=(28, 28), norm="ortho")  # zero phase, unit energy
    assert float(image.std(unbiased=False)) == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(resample_magnitude(magnitude, (28, 28)), magnitude)
    wide = resample_magnitude(magnitude, (40, 56))
    assert wide.shape == (40, 29)
    assert float(torch.fft.irfft2(wide, s=(40, 56), norm="ortho").std(unbiased=False)) == pytest.approx(1.0, rel=1e-4)


def test_maco_magnitude_is_the_datasets_after_every_step(small_model, mnist):
    magnitude = mnist_magnitude()
    direct = amplitude_spectrum(to_tensor(mnist.train_x)).float()
    assert torch.allclose(magnitude, direct, rtol=1e-5, atol=1e-6)  # cached = computed from the data
    assert float(magnitude[0, 1]) > 5 * float(magnitude[14, 14])  # MNIST's energy sits at low frequencies
    recorder = Images()
    objective = O.per_element([O.channel("Conv2D_3", 1), O.channel("Conv2D_2", 4), O.logit(3)])
    result = ascend(small_model, multiscale_noise(3, seed=2), objective,
                    AscentSettings(steps=12, param="maco", snapshot_steps=()), callbacks=[recorder])
    assert len(recorder.images) == 13
    for images in recorder.images:
        assert images.shape == (3, 1, 28, 28) and not images.is_complex()
        spectrum = torch.fft.rfft2(images, norm="ortho").abs()
        assert torch.allclose(spectrum[:, 0], magnitude.expand(3, -1, -1), rtol=1e-3, atol=2e-4)
    rose = result.final > result.values[0]
    assert int(rose.sum()) >= 2 and bool((rose | ~result.reacted).all())


def test_valid_pixels_stay_in_the_pixel_range_at_every_step(small_model):
    low, high = valid_range(small_model)
    normalize = model_normalization(small_model)
    assert torch.allclose(low, normalize(torch.zeros(1, 1, 28, 28))) and float(high.min()) > float(low.max())
    for name in ("pixel", "fourier", "maco"):
        recorder = Images()
        settings = AscentSettings(steps=10, param=name, valid_pixels=True, epsilon=0.05, snapshot_steps=())
        result = ascend(small_model, multiscale_noise(4, seed=3), O.channel("Conv2D_3", 7), settings,
                        callbacks=[recorder])
        for images in recorder.images:
            assert bool((images >= low - 1e-5).all() and (images <= high + 1e-5).all()), name
        assert float(result.images.std()) > 0.3  # not squashed flat
    assert isinstance(make_parametrization("fourier", True, small_model), ValidPixels)
    with pytest.raises(UserError, match="valid pixels need the model"):
        make_parametrization("pixel", valid_pixels=True)
    with pytest.raises(UserError, match="parametrization"):
        AscentSettings(param="wavelet").check()


def test_pixel_is_the_default_and_leaves_images_unchanged(small_model):
    starts = multiscale_noise(2, seed=4)
    objective = O.channel("Conv2D_3", 3)
    plain = ascend(small_model, starts, objective, AscentSettings(steps=8))
    explicit = ascend(small_model, starts, objective, AscentSettings(steps=8), parametrization=Pixel())
    assert torch.equal(plain.images, explicit.images) and torch.equal(plain.values, explicit.values)
    assert torch.equal(plain.start, starts)
    assert isinstance(AscentSettings().pieces().parametrization, Pixel)


@pytest.mark.parametrize("name", ["fourier", "maco"])
def test_every_parametrization_lifts_maps_nodes_and_logits(small_model, name):
    settings = AscentSettings(steps=30, param=name)
    targets = [*map_objectives(small_model, "Conv2D_3", [3, 11]), O.node("Conv2D_2", 3, 3, 3),
               *logit_objectives(small_model, [4])]
    run = find_oips(small_model, targets, settings, seed=1)
    assert run.images.shape == (4, 1, 28, 28)
    lifted = run.final > run.values[0] + 0.2
    assert bool(lifted[[0, 1, 3]].all()) and bool((lifted | ~run.reacted).all()), (name, run.values[0], run.final)
    assert torch.allclose(run.images.flatten(1).std(dim=1, unbiased=False), torch.ones(4), atol=1e-3)


def test_dreams_with_each_parametrization(small_model):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 56), indexing="ij")
    photo = (0.5 + 0.4 * torch.sin(6 * xx) * torch.cos(5 * yy))[None, None]
    objective = O.channel("Conv2D_3", 11) + O.layer("Conv2D_1")
    dreams = {}
    for name, mode, valid in (("pixel", "downscale", False), ("fourier", "downscale", False),
                              ("maco", "downscale", True), ("fourier", "native", True)):
        settings = DreamSettings(mode=mode, steps=6, rounds=2, param=name, valid_pixels=valid)
        result = dream(small_model, photo, objective, settings)
        assert result.luminance.shape == photo.shape
        assert result.values[-1] > result.values[0], (name, mode, result.values)
        dreams[(name, mode)] = result.luminance
    assert not torch.equal(dreams[("pixel", "downscale")], dreams[("fourier", "downscale")])
    unchanged = dream(small_model, photo, objective, DreamSettings(mode="native", steps=0, param="maco", width=0))
    assert torch.allclose(unchanged.luminance, photo)  # no steps: the photo, whatever the parametrisation


def test_cli_param_and_valid_pixels(small_model_dir, tmp_path, capsys):
    out = tmp_path / "f.png"
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--maps", "0-1", "--steps", "6", "--quiet",
                            "--param", "fourier", "--valid-pixels", "--out", str(out)], capsys)
    assert code == 0, err
    body = json.loads(out.with_suffix(".json").read_text())
    assert body["settings"]["param"] == "fourier" and body["settings"]["valid_pixels"] is True
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--logit", "3", "--steps", "5", "--quiet",
                            "--param", "maco", "--out", str(tmp_path / "m.png")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["settings"]["param"] == "maco"
    code, _, err = run_cli(["dream", "--sample", "flower", "--max-side", "64", "--model", str(small_model_dir),
                            "--steps", "3", "--rounds", "1", "--param", "maco", "--valid-pixels", "--quiet",
                            "--out", str(tmp_path / "d")], capsys)
    assert code == 0, err
    sidecar = json.loads(next((tmp_path / "d").glob("*.json")).read_text())
    assert sidecar["settings"]["param"] == "maco" and sidecar["settings"]["valid_pixels"] is True
    code, _, err = run_cli(["oip", "--model", str(small_model_dir), "--param", "wavelet"], capsys)
    assert code == 2 and "invalid choice" in err


def test_a_dream_with_valid_pixels_starts_from_the_photo_itself(small_model):
    from cnnscope.optvis.parametrizations import ImageValidPixels, model_normalization

    photo = torch.rand(1, 1, 32, 40, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05  # raw, inside (0, 1)
    normalize = model_normalization(small_model)
    standardised = normalize(photo)
    for inner in (Pixel(), Fourier()):
        exact = ImageValidPixels(inner, normalize)
        start = exact(exact.params(standardised))
        assert torch.allclose(start, standardised, atol=1e-4), inner  # step 0 is the photo
        warped = ValidPixels(inner, normalize)  # the pattern reading of OIP starts: another image
        assert float((warped(warped.params(standardised)) - standardised).abs().max()) > 0.3
    mean, std = 0.1307, 0.3081  # the small model's global normalisation, computed by hand
    edges = ImageValidPixels(Pixel(), normalize).params((torch.tensor([[[[0.0, 1.0]]]]) - mean) / std)
    assert torch.allclose(torch.sigmoid(VALID_GAIN * edges), torch.tensor([[[[1e-3, 1 - 1e-3]]]]), atol=1e-6)

    objective = O.channel("Conv2D_3", 11)
    result = dream(small_model, photo, objective, DreamSettings(mode="native", steps=4, rounds=1, valid_pixels=True))
    assert result.values[-1] > result.values[0]
    assert float(result.luminance.min()) >= 0.0 and float(result.luminance.max()) <= 1.0  # still real pixels
