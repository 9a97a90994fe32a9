import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Pyro's small per-step tensors run several times faster on one thread on the shared 2-core
    machines (intra-op threads only add synchronisation); restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
