"""Shared fixtures of the unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after: tiny MLPs run fastest on one, and on a loaded 2-core
    machine more threads spin and stall."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
