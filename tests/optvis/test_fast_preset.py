"""The `--fast` preset: two starts per target race, a falling normalised step (half cosine),
per-target early stopping."""

from __future__ import annotations

import math

import pytest
import torch

from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import RACE_STARTS, AscentSettings, ascend
from cnnscope.optvis.callbacks import Callback
from cnnscope.optvis.examples import target_values
from cnnscope.optvis.gallery import raced, start_similarity
from cnnscope.optvis.oip import find_oips, map_objectives
from cnnscope.optvis.quality import quality_report
from cnnscope.optvis.starts import multiscale_noise
from cnnscope.optvis.steps import NormalizedGradient, cosine_epsilon
from cnnscope.optvis.strategies import CoarseToFine, _chunks, run_batched


def test_cosine_epsilon_falls_from_start_to_end_and_stays():
    assert cosine_epsilon(0.5, 0.01, 100, 0) == pytest.approx(0.5)
    assert cosine_epsilon(0.5, 0.01, 100, 50) == pytest.approx(0.255)
    assert cosine_epsilon(0.5, 0.01, 100, 25) == pytest.approx(0.01 + 0.245 * (1 + math.cos(math.pi / 4)))
    assert cosine_epsilon(0.5, 0.01, 100, 100) == pytest.approx(0.01)
    assert cosine_epsilon(0.5, 0.01, 100, 140) == pytest.approx(0.01)


def test_falling_step_moves_by_the_scheduled_rms():
    gradient = torch.arange(32, dtype=torch.float32).view(2, 1, 4, 4) - 10
    images = torch.zeros(2, 1, 4, 4)
    rule = NormalizedGradient(0.5, 0.01, steps=10)
    for step, expected in ((0, 0.5), (5, 0.255), (10, 0.01)):
        moved = rule(images, gradient, step)
        rms = moved.pow(2).flatten(1).mean(dim=1).sqrt()
        assert torch.allclose(rms, torch.full((2,), expected), rtol=1e-5)
    constant = NormalizedGradient(0.01)(images, gradient, 7)
    assert torch.allclose(constant.pow(2).flatten(1).mean(dim=1).sqrt(), torch.full((2,), 0.01), rtol=1e-5)


def test_fast_preset_values_and_overrides():
    fast = AscentSettings.fast()
    assert (fast.steps, fast.epsilon, fast.epsilon_end, fast.early_stop, fast.tolerance, fast.rule,
            fast.standardize, fast.race) == (95, 0.8, 0.01, True, 1e-4, "normalized", True, 15)
    assert (AscentSettings.fast(steps=80, seed=3).steps, AscentSettings.fast(steps=80).race) == (80, 13)
    assert AscentSettings.fast(steps=80, race=5).race == 5 and AscentSettings().race == 0
    with pytest.raises(UserError, match="race"):
        AscentSettings(race=-1).check()
    assert AscentSettings().epsilon_end is None  # the articles' rule stays the default
    with pytest.raises(UserError, match="epsilon end"):
        AscentSettings(epsilon_end=-1.0).check()


def test_fast_preset_climbs_higher_than_the_articles_rule_in_the_same_steps(small_model):
    targets = map_objectives(small_model, "Conv2D_3")[:8]
    articles = find_oips(small_model, targets, AscentSettings(steps=40))
    fast = find_oips(small_model, targets, AscentSettings.fast(steps=40))
    both = articles.reacted & fast.reacted
    assert int(both.sum()) >= 4
    assert float(fast.final[both].median()) > float(articles.final[both].median())
    assert int(fast.steps_used.max()) <= 40
    again = find_oips(small_model, targets, AscentSettings.fast(steps=40))
    assert torch.equal(again.images, fast.images)  # same seed, same numbers


def test_a_race_keeps_only_the_best_start_of_each_group_after_its_step(small_model):
    """Three maps with two starts each race at step 8: the loser of each pair stops there (its
    steps_used is 8 and its values stay), the leader at step 8 goes on as it would alone."""
    scan = [O.channel("Conv2D_3", m) for m in range(24) for _ in range(2)]
    noise = multiscale_noise(len(scan), (28, 28), (3, 7, 14, 28), (0.5,) * 4, seeds=list(range(len(scan))))
    reacting = ascend(small_model, noise, O.per_element(scan), AscentSettings(steps=30)).reacted.view(24, 2).all(1)
    maps = reacting.nonzero().squeeze(1)[:3].tolist()
    rows = [2 * m + k for m in maps for k in range(2)]
    objective, starts = O.per_element([scan[i] for i in rows]), noise[rows]
    settings = AscentSettings(steps=30, race=8)
    free = ascend(small_model, starts, objective, AscentSettings(steps=30))
    raced = ascend(small_model, starts, objective, settings, groups=torch.tensor([0, 0, 1, 1, 2, 2]))
    leaders = free.values[8].view(3, 2).argmax(dim=1) + torch.arange(0, 6, 2)
    losers = torch.tensor([i for i in range(6) if i not in leaders.tolist()])
    assert raced.steps_used[losers].tolist() == [8, 8, 8]
    assert raced.steps_used[leaders].tolist() == [30, 30, 30]
    assert torch.equal(raced.values[:9], free.values[:9])  # the same ascent up to the race
    assert torch.equal(raced.values[30, losers], free.values[8, losers])  # frozen at their race value
    assert torch.allclose(raced.values[:, leaders], free.values[:, leaders], rtol=1e-5, atol=1e-6)
    assert torch.allclose(raced.images[leaders], free.images[leaders], atol=1e-5)
    assert torch.equal(ascend(small_model, starts, objective, settings).values, free.values)  # no groups: no race
    with pytest.raises(UserError, match="race groups"):
        ascend(small_model, starts, objective, settings, groups=torch.tensor([0, 0]))


def test_chunks_keep_every_group_whole():
    assert [c.tolist() for c in _chunks(5, 2, None)] == [[0, 1], [2, 3], [4]]
    groups = torch.tensor([0, 1, 2, 0, 1, 2])  # starts (restart, target) -> target
    assert [c.tolist() for c in _chunks(6, 4, groups)] == [[0, 1, 3, 4], [2, 5]]
    assert [c.tolist() for c in _chunks(6, 1, groups)] == [[0, 3], [1, 4], [2, 5]]  # a group above the size


def test_fast_oips_race_two_starts_per_map_and_chunking_changes_nothing(small_model, mnist):
    targets = map_objectives(small_model, "Conv2D_3", [0, 3, 11, 20, 33, 47, 64, 90])
    settings = AscentSettings.fast(steps=30)
    run = find_oips(small_model, targets, settings)
    assert run.restarts == RACE_STARTS == 2 and run.starts.final.shape == (2, 8)
    both_moving = run.starts.reacted.all(dim=0)
    best = run.starts.final.argmax(dim=0)
    assert torch.equal(run.restart[both_moving], best[both_moving])  # the OIP is the race's winner
    chunked = find_oips(small_model, targets, settings, chunk_size=3)  # one target's two starts per chunk
    assert torch.equal(chunked.restart, run.restart)
    assert torch.allclose(chunked.starts.final, run.starts.final, rtol=1e-4, atol=1e-5)  # losers stopped alike
    single = find_oips(small_model, targets, settings, restarts=1)  # start 0 alone: where it won, the same OIP
    first_won = run.restart == 0
    assert single.restarts == 1 and 0 < int(first_won.sum()) < 8, run.restart
    assert torch.allclose(run.final[first_won], single.final[first_won], rtol=1e-4)
    assert raced(run) and not raced(find_oips(small_model, targets[:1], AscentSettings(steps=30), restarts=2))
    with pytest.raises(UserError, match="raced"):  # a gallery needs every start to run to the end
        start_similarity(run)
    images = to_tensor(mnist.test_x[:200])
    report = quality_report(run, small_model, images, target_values(small_model, targets, images))
    assert all(row.get("start_similarity") is None for row in report["targets"])
    with pytest.raises(UserError, match="diverse"):
        find_oips(small_model, targets, settings, diverse=2)
    with pytest.raises(UserError, match="coarse-to-fine"):
        find_oips(small_model, targets, settings, strategy=CoarseToFine((10, 10, 5, 5)))


def test_the_default_chunk_is_128_images_per_cpu_thread_and_512_on_a_gpu():
    from cnnscope.optvis.strategies import default_chunk_size

    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert default_chunk_size(torch.device("cpu")) == 128 * threads
    finally:
        torch.set_num_threads(before)
    assert default_chunk_size(torch.device("cuda")) == 512


def test_small_batches_run_on_fewer_threads_and_the_setting_comes_back(small_model):
    from cnnscope.optvis.strategies import chunk_threads

    before = torch.get_num_threads()
    seen = []

    class Threads(Callback):  # records the thread count the ascent runs with
        def on_begin(self, settings, images):
            seen.append(torch.get_num_threads())

    try:
        torch.set_num_threads(2)
        assert [chunk_threads(n, torch.device("cpu")) for n in (1, 16, 63, 64, 500)] == [1, 1, 1, 2, 2]
        assert chunk_threads(16, torch.device("cuda")) is None
        run_batched(small_model, multiscale_noise(3), map_objectives(small_model, "Conv2D_3", [0, 1, 2]),
                    AscentSettings(steps=2), callbacks=[Threads()])
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
