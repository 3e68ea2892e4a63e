"""The dream section of the demo report: the articles' single-map dream of map 56 and of the
map that dreams best on the flower photo, and a layer-mix dream in octaves."""

from __future__ import annotations

import torch

from cnnscope.app.parsing import parse_layer_mix
from cnnscope.app.report.page import Figure, Section
from cnnscope.data.photos import load_photo
from cnnscope.figures.dream import render_panel
from cnnscope.files import save_image
from cnnscope.optvis.dream import DreamSettings, dream, screen_maps
from cnnscope.optvis.objectives import channel


def report_section(ctx):
    """The dream part of `cnnscope demo`: the articles' single-map dream of map 56 and of the map
    that dreams best, on the flower photo; a layer-mix dream in octaves."""
    model, quick = ctx.model, bool(ctx.quick)
    title = "DeepDream with the MNIST network"
    convs = model.layers_of_kind("conv")
    deep = convs[-1] if convs else None
    if deep is None:
        return Section(title, "This model has no conv layers, so it cannot dream on photos.")
    photo = load_photo(sample="flower", max_side=128 if quick else 640)
    down = DreamSettings(steps=10 if quick else None, rounds=2 if quick else None, seed=ctx.seed)
    gains = screen_maps(model, photo, deep, steps=down.resolved().steps)
    ranked = [int(i) for i in torch.argsort(gains, descending=True)]
    article_map = 56 if model.output_shape(deep)[0] > 56 else ranked[-1]
    best = next(i for i in ranked if i != article_map)
    figures, facts = [], {}
    for map_index, why in ((article_map, "the articles' map number; maps are numbered arbitrarily by training, "
                                         "so this network's map 56 is not theirs"),
                           (best, f"the map of {deep} whose value rose most when dreaming on this photo")):
        result = dream(model, photo, channel(deep, map_index), down)
        name = f"dream_{deep}_{map_index}.png"
        save_image(ctx.folder / name, render_panel(photo, result))
        v = result.values
        figures.append(Figure(name, (
            f"{deep}, map {map_index} ({why}), dreaming on the flower photo the articles' way: the photo squeezed "
            f"to 28x28, {result.settings.steps} ascent steps, upscaled, the lost detail re-added, "
            f"{result.settings.rounds} rounds; the 28x28 dream in viridis and gray, the blurred upscaled dream, and "
            f"the final image after the adjustment of the value distribution (std {result.settings.width:g}). "
            f"Objective {v[0]:.3g} -> {v[-1]:.3g} in {result.seconds:.2f} s.")))
        facts[f"map {map_index}: objective start -> end"] = f"{v[0]:.3g} -> {v[-1]:.3g} ({result.seconds:.2f} s)"
    if model.spec.normalization.mode == "per_pixel":
        facts["layer mix (octaves)"] = ("not dreamt: the model standardises each of its 28x28 pixels separately "
                                        "(per_pixel), which has no meaning for a photo at other sizes")
    else:
        _octave_dream(ctx, photo, convs, figures, facts)
    facts["photo"] = f"scikit-learn's flower, {photo.size[1]}x{photo.size[0]} pixels, dreamed in its luminance"
    intro = ("DeepDream with a network that has only seen 28x28 digits: maps of its conv layers amplify whatever "
             "digit-stroke patterns they find in a photo. The single-map dreams follow the DeepDream article of "
             "the seed series; the octave dream follows the DeepDream notebook and Keras example. Colours are "
             "kept: only the photo's luminance (Y of YCbCr) is dreamed. `cnnscope dream --help` runs them on any "
             "photo.")
    return Section(title, intro, figures, facts)


def _octave_dream(ctx, photo, convs: list[str], figures: list, facts: dict) -> None:
    """A weighted mix of the last two conv layers dreaming in octaves (the notebook's way)."""
    model, quick = ctx.model, bool(ctx.quick)
    mix_text = ",".join(f"{name}:{w:g}" for name, w in zip(convs[-2:], (1.0, 2.0)[-len(convs[-2:]):], strict=True))
    octave_settings = DreamSettings(mode="octaves", steps=5 if quick else None, octaves=2 if quick else 3,
                                    px=2.0 if quick else 4.0, seed=ctx.seed)
    result = dream(model, photo, parse_layer_mix(mix_text), octave_settings)
    save_image(ctx.folder / "dream_octaves.png", render_panel(photo, result))
    s, v = result.settings, result.values
    sizes = ", ".join(f"{w}x{h}" for h, w in (stage.size for stage in result.stages))
    figures.append(Figure("dream_octaves.png", (
        f"A weighted mix of whole layers ({mix_text}) dreaming in {s.octaves} octaves (network sizes {sizes}; "
        f"one network pixel = {s.px:g} photo pixels at the finest), {s.steps} steps each with normalised "
        f"gradients and random roll jitter of up to {s.jitter} pixels, the photo's detail carried between "
        f"sizes. Right: where the luminance changed (red brighter, blue darker). Objective {v[0]:.3g} -> "
        f"{v[-1]:.3g} in {result.seconds:.2f} s.")))
    facts["layer mix (octaves): objective start -> end"] = f"{v[0]:.3g} -> {v[-1]:.3g} ({result.seconds:.2f} s)"

