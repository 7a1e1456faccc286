"""Shared test set-up."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # 2 intra-op threads on a busy 2-core machine are many times slower than 1 (FACTS.md).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
