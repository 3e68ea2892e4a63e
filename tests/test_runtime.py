"""The device and thread policy."""

import os

import pytest
import torch

from cnnscope.errors import UserError
from cnnscope.runtime import default_threads, free_cores, pick_device, usable_cores, using_threads


@pytest.mark.parametrize(("cores", "load", "expected"), [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 7.5, 1),
    (8, 2.2, 6), (8, 0.0, 8), (1, 0.0, 1), (4, 3.6, 1),
])
def test_free_cores_are_the_usable_cores_minus_the_load(cores, load, expected):
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
