"""Backend runners: train one model with one loss, evaluate the bound, measure gradient variance.

Both runners start from identical parameters (the models draw their initial weights from a seeded
NumPy generator) and see identical minibatches (a seeded NumPy generator with dynamic
binarisation), so the only difference between runs of one benchmark is the loss.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models import MULTI_SAMPLE_BOUNDS, build_model
from models.data import Dataset, dynamic_binarize

__all__ = [
    "HOST_DISCRETE_WARNING",
    "NumPyroRunner",
    "PyroRunner",
    "RunResult",
    "host_loss_warnings_silenced",
    "make_runner",
    "pyro_checkpoint",
    "train_batches",
]


HOST_DISCRETE_WARNING = r"Currently, SVI with .* loss does not support models with discrete latent"
"""NumPyro's ``SVI.init`` warning for host losses that cannot infer discrete sites (the benchmarks
compare with them on purpose; the table's notes say what is wrong with them)."""


@contextlib.contextmanager
def host_loss_warnings_silenced() -> Iterator[None]:
    """Silence only :data:`HOST_DISCRETE_WARNING`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=HOST_DISCRETE_WARNING, category=UserWarning)
        yield


def guide_variance(table: Any) -> float:
    """Mean per-coordinate gradient variance over the parameters that guide sites depend on."""
    rows = [row for row in table if row.sites]
    return sum(row.total_variance for row in rows) / sum(row.size for row in rows)


@dataclass
class RunResult:
    """What one training run measured."""

    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    compile_seconds: float = 0.0
    wall_seconds: float = 0.0


def train_batches(data: Dataset, batch_size: int, steps: int, seed: int) -> Iterator[np.ndarray]:
    """``steps`` shuffled, dynamically binarised training batches (same for every loss)."""
    rng = np.random.default_rng(seed)
    produced = 0
    while produced < steps:
        order = rng.permutation(len(data.train))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield dynamic_binarize(data.train[order[start : start + batch_size]], rng)
            produced += 1
            if produced == steps:
                return


class NumPyroRunner:
    """Train and evaluate a registered model with a NumPyro loss (``jit``-compiled steps)."""

    backend = "numpyro"

    def __init__(self, model_name: str, data: Dataset, lr: float, **config: Any) -> None:
        self.model, self.guide = build_model(model_name, "numpyro", data.train_mean, **config)
        self.lr = lr

    def train(
        self, loss: Any, batches: Iterator[np.ndarray], seed: int, progress: Callable | None = None
    ) -> RunResult:
        """Run SVI over the batches; returns per-step losses and timings."""
        import jax
        import jax.numpy as jnp
        from numpyro.infer import SVI
        from numpyro.optim import Adam

        svi = SVI(self.model, self.guide, Adam(self.lr), loss)
        first = jnp.asarray(next(batches))
        with host_loss_warnings_silenced():
            state = svi.init(jax.random.key(seed), first)
        update = jax.jit(svi.update)
        result = RunResult()
        start = time.perf_counter()
        state, value = update(state, first)
        value.block_until_ready()
        result.compile_seconds = time.perf_counter() - start
        result.losses.append(float(value))
        for x in batches:
            t = time.perf_counter()
            state, value = update(state, jnp.asarray(x))
            result.losses.append(float(value))  # blocks until the step is done
            result.step_seconds.append(time.perf_counter() - t)
            if progress is not None:
                progress()
        result.wall_seconds = time.perf_counter() - start
        self.svi, self.state, self.loss = svi, state, loss
        return result

    @property
    def params(self) -> dict:
        """Current (constrained) parameter values."""
        return self.svi.get_params(self.state)

    def bound(self, x: np.ndarray, num_samples: int, seed: int, batch_size: int = 100) -> float:
        """Mean ``num_samples``-sample bound per data point over ``x``."""
        import jax
        import jax.numpy as jnp

        total, key = 0.0, jax.random.key(seed)
        for start in range(0, len(x), batch_size):
            key, sub = jax.random.split(key)
            xb = jnp.asarray(x[start : start + batch_size])
            per_point = MULTI_SAMPLE_BOUNDS["numpyro"](
                self.model, self.guide, self.params, xb, num_samples, sub, chunk_size=25
            )
            total += float(jnp.sum(per_point))
        return total / len(x)

    def variance(self, loss: Any, params: dict, x: np.ndarray, replicates: int, seed: int) -> Any:
        """:func:`ppl_arms.numpyro.gradient_variance` of ``loss`` at ``params`` on batch ``x``."""
        import jax
        import jax.numpy as jnp

        from ppl_arms.numpyro import gradient_variance

        return gradient_variance(
            loss,
            self.model,
            self.guide,
            params,
            jnp.asarray(x),
            num_estimates=replicates,
            rng_key=jax.random.key(seed),
            batch_size=50,
        )


class PyroRunner:
    """Train and evaluate a registered model with a Pyro loss (vectorised particles)."""

    backend = "pyro"

    def __init__(self, model_name: str, data: Dataset, lr: float, **config: Any) -> None:
        import pyro

        pyro.clear_param_store()
        self.model, self.guide = build_model(model_name, "pyro", data.train_mean, **config)
        self.lr = lr

    def train(
        self, loss: Any, batches: Iterator[np.ndarray], seed: int, progress: Callable | None = None
    ) -> RunResult:
        """Run SVI over the batches; returns per-step losses and timings."""
        import pyro
        import torch
        from pyro.infer import SVI

        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        svi = SVI(self.model, self.guide, pyro.optim.Adam({"lr": self.lr}), loss)
        result = RunResult()
        start = time.perf_counter()
        first = True
        for x in batches:
            t = time.perf_counter()
            result.losses.append(float(svi.step(torch.as_tensor(x))))
            if first:
                result.compile_seconds = time.perf_counter() - t
                first = False
            else:
                result.step_seconds.append(time.perf_counter() - t)
            if progress is not None:
                progress()
        result.wall_seconds = time.perf_counter() - start
        self.loss = loss
        return result

    @property
    def params(self) -> dict:
        """A checkpoint: copies of the current unconstrained parameter values."""
        return pyro_checkpoint()

    def bound(self, x: np.ndarray, num_samples: int, seed: int, batch_size: int = 100) -> float:
        """Mean ``num_samples``-sample bound per data point over ``x``."""
        import pyro
        import torch

        pyro.set_rng_seed(seed)
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = torch.as_tensor(x[start : start + batch_size])
                per_point = MULTI_SAMPLE_BOUNDS["pyro"](
                    self.model, self.guide, xb, num_samples, chunk_size=25
                )
                total += float(per_point.sum())
        return total / len(x)

    def variance(self, loss: Any, params: dict, x: np.ndarray, replicates: int, seed: int) -> Any:
        """:func:`ppl_arms.pyro.gradient_variance` of ``loss`` at the checkpoint ``params``."""
        import pyro
        import torch

        from ppl_arms.pyro import gradient_variance

        store = pyro.get_param_store()
        with torch.no_grad():  # restore in place: nn.Modules hold these very tensors
            for k, v in params.items():
                store[k].unconstrained().copy_(v)
        pyro.set_rng_seed(seed)
        return gradient_variance(
            loss, self.model, self.guide, torch.as_tensor(x), num_estimates=replicates
        )


def pyro_checkpoint() -> dict:
    """Copies of the unconstrained values in Pyro's param store."""
    import pyro

    store = pyro.get_param_store()
    return {k: store[k].unconstrained().detach().clone() for k in store}


def make_runner(backend: str, model_name: str, data: Dataset, lr: float, **config: Any) -> Any:
    """A fresh runner of ``backend`` for ``model_name`` on ``data``."""
    runners = {"numpyro": NumPyroRunner, "pyro": PyroRunner}
    if backend not in runners:
        raise ValueError(f"unknown backend {backend!r}; valid backends are {sorted(runners)}")
    return runners[backend](model_name, data, lr, **config)
