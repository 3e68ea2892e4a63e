"""The device and thread policy."""

import os

import pytest
import torch

from cnnscope.errors import UserError
from cnnscope.runtime import default_threads, free_cores, pick_device, usable_cores, using_threads


@pytest.mark.parametrize(("cores", "load", "expected"), [
    (2, 0.0, 2), (2, 0.9, 2), (2, 1.9, 2), (2, 2.9, 2), (2, 3.0, 1), (2, 7.5, 1),
    (8, 2.2, 8), (8, 11.9, 8), (8, 12.0, 4), (8, 14.6, 1), (1, 0.0, 1), (1, 1.6, 1), (4, 6.5, 2),
])
def test_all_cores_until_the_machine_is_oversubscribed(cores, load, expected):
    assert free_cores(cores, load) == expected


def test_usable_cores_follow_the_affinity_mask():
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert 1 <= free_cores() <= usable_cores()


def test_default_threads_are_chosen_once_per_process():
    first = default_threads()
    assert default_threads() is first and 1 <= first <= usable_cores()


def test_using_threads_restores_the_setting():
    before = torch.get_num_threads()
    with using_threads(1) as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(UserError, match="threads"):
        with using_threads(0):
            pass


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="device"):
        pick_device("tpu")


def test_side_by_side_gives_each_jobs_one_thread_result_in_order(small_model):
    import threading

    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.oip import find_oips, map_objectives
    from cnnscope.runtime import side_by_side

    def job(layer, maps):
        def run():
            return threading.get_ident(), torch.get_num_threads(), find_oips(
                small_model, map_objectives(small_model, layer, maps), AscentSettings(steps=8))
        return run

    jobs = [job("Conv2D_3", [0, 1, 2]), job("Conv2D_2", [4, 5]), job("Conv2D_1", [7])]
    before = torch.get_num_threads()
    together = side_by_side(jobs, workers=2)
    assert torch.get_num_threads() == before
    with using_threads(1):
        alone = [run() for run in jobs]
    assert [r.labels for _, _, r in together] == [r.labels for _, _, r in alone]
    assert all(torch.equal(a.images, b.images) and torch.equal(a.values, b.values)
               for (_, _, a), (_, _, b) in zip(together, alone, strict=True))
    assert {threads for _, threads, _ in together} == {1}
    assert threading.get_ident() not in {ident for ident, _, _ in together}
    # a GPU run (or one worker) keeps the caller's thread and thread count
    for kwargs in ({"workers": 1}, {"workers": 2, "device": "cuda"}):
        assert {ident for ident, _, _ in side_by_side(jobs[1:], **kwargs)} == {threading.get_ident()}
