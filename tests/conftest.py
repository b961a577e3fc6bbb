"""Shared fixtures and the gpu marker."""

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep every test on one torch thread: small models run faster that way."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def segment_data():
    """A small segmented simulation: 12 segments x 60 points, 2 sources."""
    from skivae.datasets import make_nonstationary_sources

    return make_nonstationary_sources(12, 60, 2, n_layers=2, random_state=0)


@pytest.fixture
def rng():
    return np.random.RandomState(0)
