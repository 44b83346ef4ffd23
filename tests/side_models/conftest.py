"""Side-model tests run tiny networks: one intra-op thread (see tests/models/conftest.py for why)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
