"""Strict, deterministic test environment.

* float64 by default in torch and JAX (``jax_enable_x64``), so exactness tests can use 1e-10;
* warnings are errors (``pyproject.toml``: ``filterwarnings``, with a commented ignore list);
* every test gets a fresh NumPy generator and fixed torch/JAX seeds; the Pyro param store is
  cleared per test.
"""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
# Tests compile many small programs once each and run them briefly (an eager NumPyro loss call
# compiles a few hundred primitives): XLA's cheapest backend optimisation halves the compile time,
# and the classic CPU fusion codegen (no fusion emitters) halves it again; numbers agree to float64
# rounding. Speed is measured in the benchmarks, with XLA's defaults, never in tests.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0 "
    "--xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false",
)

import jax
import numpy as np
import pytest
import torch

jax.config.update("jax_enable_x64", True)
torch.set_default_dtype(torch.float64)
# Two xdist workers share the 2 cores, and the test tensors are tiny: torch's intra-op threads
# would only oversubscribe the cores (each worker spinning for the other's core).
torch.set_num_threads(1)


class Backend:
    """A tiny test-side view of one array backend: numpy in, backend arrays out, and back."""

    def __init__(self, name: str):
        self.name = name

    def asarray(self, x, dtype=None):
        x = np.asarray(x)
        if self.name == "torch":
            t = torch.as_tensor(np.array(x))
            if dtype is not None:
                t = t.to(getattr(torch, dtype))
            return t
        import jax.numpy as jnp

        return jnp.asarray(x, dtype=dtype)

    @staticmethod
    def numpy(x):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def __repr__(self):
        return self.name


@pytest.fixture(params=["torch", "jax"])
def backend(request):
    return Backend(request.param)


@pytest.fixture(autouse=True)
def _float64_stays_on():
    """Fail a test that leaves JAX's x64 mode or torch's default dtype changed, and restore them.

    Both are process-wide: a leak (e.g. a benchmark switching to float32 in-process) would turn
    every later test of the same xdist worker into a float32 test.
    """
    yield
    leaked = []
    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
        leaked.append("jax_enable_x64 was left False")
    if torch.get_default_dtype() != torch.float64:
        leaked.append(f"torch's default dtype was left {torch.get_default_dtype()}")
        torch.set_default_dtype(torch.float64)
    if leaked:
        pytest.fail("global precision leaked from this test: " + "; ".join(leaked))


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - reseed the legacy global RNG for third-party code
    try:
        import pyro

        pyro.set_rng_seed(0)
        pyro.clear_param_store()
    except ImportError:  # pragma: no cover - pyro is a test dependency
        pass


@pytest.fixture
def rng():
    return np.random.default_rng(20261130)
