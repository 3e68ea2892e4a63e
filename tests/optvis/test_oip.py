"""OIP runs: restarts, precursor, dataset max and quality figures, pictures, JSON, report section."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.figures.oip import evolution_strip, oip_tile, zoo_picture
from cnnscope.figures.render import tile_origin
from cnnscope.nn.model import per_image_standardize
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentSettings, ascend, log_snapshot_steps
from cnnscope.optvis.gallery import gallery_summary, shift_similarity, start_similarity
from cnnscope.optvis.oip import (
    add_dataset_max,
    convergence,
    convergence_line,
    dataset_max,
    find_oips,
    logit_objectives,
    map_objectives,
    precursor_candidates,
    quality,
    run_to_json,
    start_seed,
)
from cnnscope.optvis.starts import multiscale_noise, noise_components
from cnnscope.optvis.strategies import CoarseToFine

FEW = AscentSettings(steps=20)


@pytest.fixture(scope="module")
def zoo(small_model_dir, mnist):
    """Maps 0..23 of Conv2D_3 of the small model, 20 steps, evaluated on 1000 test images."""
    from cnnscope.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(small_model_dir)
    run = find_oips(model, map_objectives(model, "Conv2D_3", range(24)), FEW, seed=1)
    add_dataset_max(run, model, to_tensor(mnist.test_x[:1000]))
    return model, run


def test_run_shapes_and_seeding(zoo, small_model):
    model, run = zoo
    assert run.images.shape == (24, 1, 28, 28)
    assert run.values.shape == (21, 24)
    assert sorted(run.snapshots) == [0, 20]
    assert run.labels[3] == "Conv2D_3:3"
    # the start of map 3 depends on (seed, map name), not on its place in the batch
    start = multiscale_noise(1, seeds=[start_seed(1, O.channel("Conv2D_3", 3), 0)])
    assert torch.equal(run.snapshots[0][3], start[0])
    alone = find_oips(small_model, [O.channel("Conv2D_3", 3)], FEW, seed=1)
    assert torch.allclose(alone.images[0], run.images[3], atol=1e-4)


def test_restarts_keep_the_best_start(small_model):
    targets = map_objectives(small_model, "Conv2D_3", [2, 9, 30])
    one = find_oips(small_model, targets, FEW, seed=0)
    three = find_oips(small_model, targets, FEW, seed=0, restarts=3)
    assert three.restart.shape == (3,)
    assert torch.all(three.final >= one.final - 1e-5)  # restart 0 is the single-start run
    for i, r in enumerate(three.restart.tolist()):
        alone = find_oips(small_model, [targets[i]], FEW, seed=0, restarts=r + 1)
        assert float(alone.final[0]) == pytest.approx(float(three.final[i]), rel=1e-4)  # best of 0..r is r


def test_precursor_candidates_and_screening(small_model):
    objective = O.channel("Conv2D_3", 4)
    candidates = precursor_candidates(0, objective, 0, 8, (28, 28), (3, 7, 14, 28), (0.5,) * 4)
    assert candidates.shape == (8, 1, 28, 28)
    ordinary = multiscale_noise(1, seeds=[start_seed(0, objective, 0)])
    assert torch.equal(candidates[0], ordinary[0])
    # blob candidates: skewed towards a few bright pixels, like digits
    skew = ((candidates[1:] ** 3).flatten(1).mean(1))
    assert (skew > 0.5).sum() >= 4
    targets = map_objectives(small_model, "Conv2D_3", range(32))
    plain = find_oips(small_model, targets, FEW, seed=0)
    screened = find_oips(small_model, targets, FEW, seed=0, precursor=8, precursor_steps=6)
    assert int(screened.reacted.sum()) >= int(plain.reacted.sum())
    assert set(screened.start_kind) <= {"noise", "precursor"}
    assert screened.precursor == 8 and screened.precursor_steps == 6


def test_dataset_max_is_the_maximum_over_normalised_images(zoo, mnist):
    model, run = zoo
    images = to_tensor(mnist.test_x[:1000])
    with torch.no_grad():
        maps = model.activations(images, ["Conv2D_3"])["Conv2D_3"][:, :24].mean(dim=(2, 3))
    assert torch.allclose(run.dataset_max, maps.max(dim=0).values, atol=1e-6)
    assert torch.equal(run.dataset_argmax, maps.argmax(dim=0))
    logits = logit_objectives(model, [3])
    best, where = dataset_max(model, logits, images, batch_size=300)
    with torch.no_grad():
        assert best[0] == pytest.approx(float(model(images)[:, 3].max()), rel=1e-5)
        assert int(where[0]) == int(model(images)[:, 3].argmax())


def test_quality_figures(zoo):
    _, run = zoo
    figures = quality(run)
    live = run.dataset_max > 0
    assert figures["targets"] == 24
    assert figures["live"] == int(live.sum())
    assert figures["live_with_oip"] == int((live & run.reacted).sum())
    beats = live & run.reacted & (run.final > run.dataset_max)
    assert figures["beats_dataset_max"] == int(beats.sum())
    assert figures["share_live_beating_dataset_max"] == pytest.approx(int(beats.sum()) / int(live.sum()), abs=1e-4)


def test_json_matches_the_picture(zoo, tmp_path):
    model, run = zoo
    picture = zoo_picture(run, columns=8)
    body = json.loads(json.dumps(run_to_json(run, model)))
    assert body["settings"]["steps"] == 20 and body["noise"]["scales"] == [3, 7, 14, 28]
    assert body["layers"] == {"Conv2D_3": "Conv2D_3"}
    assert len(body["targets"]) == 24
    tile_shape = None
    for i, entry in enumerate(body["targets"]):
        assert entry["map"] == i and len(entry["trajectory"]) == 21
        assert entry["final"] == pytest.approx(entry["trajectory"][-1], rel=1e-5)
        assert entry["reacted"] == bool(run.reacted[i])
        assert entry["label"].startswith(f"{i}  ")
        if not entry["reacted"]:
            assert entry["label"].endswith("no reaction")
        # re-render the tile from the JSON alone: it must be the tile in the picture
        tile = oip_tile(torch.tensor(entry["image"]), entry["label"], entry["reacted"])
        tile_shape = tile.shape[:2]
        y, x = tile_origin(i, tile_shape, columns=8, separator=2)
        shown = picture[y:y + tile_shape[0], x:x + tile_shape[1]]
        assert np.abs(shown.astype(int) - tile.astype(int)).max() <= 1, f"tile {i} differs"
    assert picture.shape[0] == 3 * tile_shape[0] + 2 * 2


def test_tiles_mark_maps_that_did_not_react():
    image = multiscale_noise(1)[0, 0]
    good = oip_tile(image, "5  1.23", True)
    bad = oip_tile(image, "5  no reaction", False)
    assert good.shape == bad.shape
    assert tuple(bad[2, -1]) == (200, 40, 40)  # red label strip
    assert tuple(good[2, -1]) == (0, 0, 0)
    # two renderings side by side: the contrast-enhanced one uses the full colour range
    pair = good[12:]
    half = (pair.shape[1] - 1) // 2
    assert pair[:, half + 1:].std() >= pair[:, :half].std() * 0.9


def test_evolution_strip(zoo, tmp_path):
    _, run = zoo
    strip = evolution_strip(run, 0, scale=4)
    assert strip.shape == (12 + 28 * 4 + 12, 2 * 28 * 4 + 2, 3)  # label, image, convergence figures
    assert (strip[-12:, 100:112] == 235).all()  # the convergence footer's background (right of its text)
    Image.fromarray(strip).save(tmp_path / "strip.png")


def test_find_oips_errors(small_model):
    targets = map_objectives(small_model, "Conv2D_3", [1])
    with pytest.raises(UserError, match="restarts"):
        find_oips(small_model, targets, FEW, restarts=0)
    with pytest.raises(UserError, match="precursor"):
        find_oips(small_model, targets, FEW, precursor=-1)
    with pytest.raises(UserError, match="larger than"):
        find_oips(small_model, targets, FEW, scales=(3, 40), factors=(1, 1))
    with pytest.raises(UserError, match="after Flatten"):
        find_oips(small_model, logit_objectives(small_model, [1]), FEW, size=40)
    with pytest.raises(UserError, match="start image"):
        find_oips(small_model, targets, FEW, start=torch.zeros(1, 1, 28, 28), restarts=2)
    with pytest.raises(UserError, match="0..127"):
        map_objectives(small_model, "Conv2D_3", [128])


def test_start_image_and_other_layers(small_model, mnist):
    from cnnscope.optvis.starts import from_dataset

    start = from_dataset(mnist, 0)
    run = find_oips(small_model, map_objectives(small_model, "Conv2D_2", [0, 1]), FEW, start=start)
    assert run.start_kind == ["image", "image"]
    assert torch.allclose(run.snapshots[0][0], start[0], atol=1e-5)
    units = find_oips(small_model, map_objectives(small_model, "Dense_1", [0, 1, 2]), FEW)
    assert units.images.shape == (3, 1, 28, 28)
    big = find_oips(small_model, map_objectives(small_model, "Conv2D_3", [5]), FEW, size=40)
    assert big.images.shape == (1, 1, 40, 40)


def test_report_section_quick(small_model, mnist, tmp_path):
    from cnnscope.app.report import ReportContext

    ctx = ReportContext(model=small_model, config={}, mnist=mnist, model_dir=tmp_path, folder=tmp_path,
                        quick=True, progress=False)
    from cnnscope.app.report.oip import report_section

    section = report_section(ctx)
    assert len(section.figures) == 7
    assert "gallery: stable / start-dependent maps" in section.facts
    for figure in section.figures:
        assert (tmp_path / figure.path).exists()
    assert "reacted, precursor (8 starts per map)" in section.facts
    assert json.loads((tmp_path / "oip_deep.json").read_text())["precursor"] == 8
    # the articles' zoo beside its dataset examples, with the quality report (issue 16)
    assert "oip_zoo_examples.png" in [figure.path for figure in section.figures]
    assert "majority success, articles' settings" in section.facts
    assert "median natural-path similarity, articles' settings" in section.facts
    body = json.loads((tmp_path / "oip_deep_articles.json").read_text())
    assert len(body["targets"]) == 16 and len(body["targets"][0]["examples"]["top"]) == 9
    assert "natural_path_mean" in body["targets"][0]["quality"] and "median_ratio" in body["quality_summary"]


def test_convergence_report_follows_the_trajectory(zoo):
    _, run = zoo
    rows = convergence(run, 3)
    assert [row["step"] for row in rows] == sorted(run.snapshots)
    values = run.values[:, 3].double()
    for row in rows[1:]:
        k = row["step"]
        assert row["value"] == float(values[k])
        assert row["step_change"] == pytest.approx(float(values[k] - values[k - 1]))
        assert row["relative"] == pytest.approx(row["step_change"] / row["value"])
    assert rows[0]["step_change"] is None and rows[1]["since_snapshot"] == pytest.approx(rows[1]["value"] - rows[0]["value"])
    assert convergence_line(rows).count(" => ") == len(rows) - 2


def test_snapshot_count_sets_the_log_spaced_steps():
    assert AscentSettings(steps=64, snapshot_count=3).snapshots() == (0, 8, 16, 32, 64) == log_snapshot_steps(64, 3)
    assert AscentSettings(steps=600).snapshots() == (0, 9, 18, 36, 72, 144, 288, 600)  # the articles'
    with pytest.raises(UserError, match="snapshots"):
        AscentSettings(snapshot_count=-1).check()


def test_coarse_to_fine_is_the_stagewise_ascent_done_by_hand(small_model):
    objective = O.channel("Conv2D_3", 3)
    stages = (4, 3, 3, 6)
    run = find_oips(small_model, [objective], AscentSettings(), seed=2, strategy=CoarseToFine(stages))
    assert run.values.shape[0] == sum(stages) + 1 and run.settings.steps == sum(stages)
    # by hand: the coarsest scale alone, then each shorter scale's fluctuations added and standardised
    seed = start_seed(2, objective, 0)
    parts = noise_components(1, 28, (3, 7, 14, 28), seeds=[seed])
    x = multiscale_noise(1, 28, (3,), (0.5,), seeds=[seed])
    assert torch.equal(run.snapshots[0], x)
    for stage, steps in enumerate(stages):
        if stage:
            x = per_image_standardize(x + 0.5 * parts[stage])
        x = ascend(small_model, x, O.per_element([objective]), AscentSettings(steps=steps, snapshot_steps=())).images
    assert torch.allclose(run.images, x, atol=1e-5)
    # the full superposition start is the same noise with every scale at once
    full = multiscale_noise(1, 28, seeds=[seed])
    assert torch.allclose(full, per_image_standardize(sum(0.5 * part for part in parts)), atol=1e-6)


def test_shift_similarity_and_galleries(small_model):
    image = multiscale_noise(1, seed=3)
    shifted = torch.zeros_like(image)
    shifted[..., 1:, 2:] = image[..., :-1, :-2]  # the same pattern, one pixel down and two right
    other = multiscale_noise(1, seed=4)
    assert float(shift_similarity(image, image)) == pytest.approx(1.0)
    assert float(shift_similarity(image, shifted)) == pytest.approx(1.0)
    assert float(shift_similarity(image, shifted, max_shift=0)) < 0.9
    assert float(shift_similarity(image, other)) < 0.6
    run = find_oips(small_model, map_objectives(small_model, "Conv2D_3", range(8)), FEW, restarts=3, seed=1)
    assert run.starts.images.shape == (3, 8, 1, 28, 28)
    for i in range(8):  # the kept OIP is the chosen start's image
        assert torch.equal(run.images[i], run.starts.images[int(run.restart[i]), i])
    similarity = start_similarity(run)
    summary = gallery_summary(run)
    assert summary["verdict"].count("stable") == summary["stable"]
    for i, value in enumerate(similarity.tolist()):
        if int(run.starts.reacted[:, i].sum()) < 2:
            assert value != value  # NaN: fewer than two reacting starts
        else:
            assert -1 <= value <= 1
    with pytest.raises(UserError, match="at least 2 starts"):
        start_similarity(find_oips(small_model, map_objectives(small_model, "Conv2D_3", [1]), FEW))


def test_find_oips_works_on_hooked_and_frozen_models_and_changes_neither(small_model):
    from helpers import Recorder

    recorder = Recorder()
    settings = AscentSettings(steps=20)
    plain = find_oips(small_model, map_objectives(small_model, "Conv2D_2", [0, 5]), settings)
    small_model.body.Conv2D_2.register_forward_hook(recorder)
    small_model.requires_grad_(False)
    small_model.train()
    hooked = find_oips(small_model, map_objectives(small_model, "Conv2D_2", [0, 5]), settings)
    assert torch.equal(hooked.images, plain.images)
    assert recorder.calls == [] and small_model.training
    assert not any(p.requires_grad for p in small_model.parameters())


def test_subset_keeps_everything_recorded_for_the_chosen_targets(small_model, mnist):
    from cnnscope.optvis.oip import add_dataset_max, subset

    run = find_oips(small_model, map_objectives(small_model, "Conv2D_2", [1, 4, 7, 9]), AscentSettings(steps=6),
                    restarts=2, seed=2)
    run = add_dataset_max(run, small_model, to_tensor(mnist.test_x[:200]))
    cut = subset(run, [2, 0])
    assert cut.labels == ["Conv2D_2:7", "Conv2D_2:1"]
    assert torch.equal(cut.final, run.final[[2, 0]]) and torch.equal(cut.images, run.images[[2, 0]])
    assert torch.equal(cut.dataset_max, run.dataset_max[[2, 0]])
    assert torch.equal(cut.starts.final, run.starts.final[:, [2, 0]])
    assert cut.starts.seeds == [[seeds[2], seeds[0]] for seeds in run.starts.seeds]
    assert cut.start_seeds == [run.start_seeds[2], run.start_seeds[0]]
    assert all(torch.equal(cut.snapshots[k], run.snapshots[k][[2, 0]]) for k in run.snapshots)


def _find(picture: np.ndarray, block: np.ndarray) -> list[tuple[int, int]]:
    """Every (y, x) where `block` appears in `picture` pixel for pixel."""
    h, w = block.shape[:2]
    found = []
    for y in range(picture.shape[0] - h + 1):
        for x in np.flatnonzero((picture[y, : picture.shape[1] - w + 1] == block[0, 0]).all(axis=1)):
            if np.array_equal(picture[y:y + h, x:x + w], block):
                found.append((y, int(x)))
    return found


def test_example_grids_stand_under_their_rank_names(zoo, mnist):
    from cnnscope.figures.oip import _header, example_grid
    from cnnscope.optvis.quality import add_quality

    model, _ = zoo
    images = to_tensor(mnist.test_x[:1000])
    run = add_quality(find_oips(model, map_objectives(model, "Conv2D_3", [0, 1]), FEW, seed=1), model, images,
                      spread=True)
    picture = zoo_picture(run, columns=1, examples=images)
    places = {}
    for rank in ("top", "middle", "bottom"):
        grid = example_grid(images, run.examples.index[rank][1])
        block = np.concatenate([_header(grid.shape[1], rank), grid], axis=0)  # the name right above its grid
        places[rank] = _find(picture, block)
        assert len(places[rank]) == 1, rank
    (y_top, x_top), (y_mid, x_mid), (y_bot, x_bot) = (places[r][0] for r in ("top", "middle", "bottom"))
    assert y_top == y_mid == y_bot and x_top < x_mid < x_bot  # left to right, in the second tile's row
    assert y_top > 0
