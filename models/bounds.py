r"""Per-data-point multi-sample bounds for evaluating the example models, in both backends.

For a model/guide pair whose sample sites all live in the ``"data"`` plate (every model in
:mod:`models`), the log importance weight of one sample is, per data point ``b``,

.. math::
    \log w_b = \sum_{\text{model sites}}\log p(\cdot) - \sum_{\text{guide sites}}\log q(\cdot),

with unscaled log-densities (``num_data`` and other scales are ignored), and the ``M``-sample bound is

.. math::
    \mathcal L_M(x_b)=\log\frac1M\sum_{m=1}^M w_{b,m}\ \le\ \log p(x_b),

non-decreasing in ``M`` in expectation (Burda et al., 2016). ``M = 1`` averaged over samples is the
ELBO. For :mod:`models.structured_prediction`, :math:`\log p(z)-\log q(z)=0` by construction, so
:math:`\mathcal L_M=\log\frac1M\sum_m p(x_{\rm bottom}\mid z_m)`, the CARMS test metric.

Randomness: the NumPyro functions take a key; the Pyro functions use torch's global generator
(seed it with ``pyro.set_rng_seed``). Parameters: NumPyro takes the ``params`` dict (e.g.
``svi.get_params(state)``); Pyro reads the param store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

__all__ = [
    "numpyro_log_weights",
    "numpyro_multi_sample_bound",
    "pyro_log_weights",
    "pyro_multi_sample_bound",
]

EVAL_PLATE = "_multi_sample_bound"
"""Name of the Pyro plate that vectorises the bound's samples."""


def _chunks(num_samples: int, chunk_size: int | None) -> Iterator[int]:
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    step = num_samples if chunk_size is None else chunk_size
    if step < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, num_samples, step):
        yield min(step, num_samples - start)


def _per_data_point(total: Any, log_prob: Any, name: str, shape: tuple[int, ...]) -> Any:
    if tuple(log_prob.shape) != shape:
        raise ValueError(
            f"site '{name}' has log-density shape {tuple(log_prob.shape)}, expected {shape}: the "
            "per-data-point bound needs every sample site inside the data plate (dim=-1)"
        )
    return log_prob if total is None else total + log_prob


def _log_weight(model_sites: dict, guide_sites: dict, shape: tuple[int, ...]) -> Any:
    total = None
    for name, site in model_sites.items():
        total = _per_data_point(total, site["fn"].log_prob(site["value"]), name, shape)
    for name, site in guide_sites.items():
        total = _per_data_point(total, -site["fn"].log_prob(site["value"]), name, shape)
    return total


# -- NumPyro ------------------------------------------------------------------------------------


@cache
def _numpyro_log_weights_fn() -> Callable:
    """The jitted NumPyro weight function, built on first use (so Pyro users need no JAX)."""
    import jax
    from numpyro import handlers

    def log_weights(
        model: Callable, guide: Callable, params: dict, x: Any, num_samples: int, rng_key: Any
    ) -> Any:
        def one(key: Any) -> Any:
            guide_key, model_key = jax.random.split(key)
            seeded_guide = handlers.substitute(handlers.seed(guide, guide_key), data=params)
            guide_trace = handlers.trace(seeded_guide).get_trace(x)
            replayed = handlers.replay(handlers.seed(model, model_key), guide_trace)
            model_trace = handlers.trace(handlers.substitute(replayed, data=params)).get_trace(x)
            sites = [
                {k: s for k, s in tr.items() if s["type"] == "sample"}
                for tr in (model_trace, guide_trace)
            ]
            return _log_weight(*sites, shape=(x.shape[-2],))

        return jax.vmap(one)(jax.random.split(rng_key, num_samples))

    return jax.jit(log_weights, static_argnums=(0, 1, 4))


def numpyro_log_weights(
    model: Callable, guide: Callable, params: dict, x: Any, num_samples: int, rng_key: Any
) -> Any:
    """Log importance weights ``[num_samples, B]`` of a NumPyro model/guide (jitted).

    Args:
        model: ``model(x)`` with every sample site in the data plate.
        guide: ``guide(x)``.
        params: Parameter values (``svi.get_params(state)``).
        x: ``[B, D]`` batch.
        num_samples: ``M``.
        rng_key: A JAX key.

    Returns:
        ``log p(x, z_m) - log q(z_m | x)`` per sample and data point.
    """
    return _numpyro_log_weights_fn()(model, guide, params, x, num_samples, rng_key)


def numpyro_multi_sample_bound(
    model: Callable,
    guide: Callable,
    params: dict,
    x: Any,
    num_samples: int,
    rng_key: Any,
    chunk_size: int | None = None,
) -> Any:
    r"""The ``M``-sample bound per data point, ``[B]``, for a NumPyro model/guide.

    Args:
        model: ``model(x)`` with every sample site in the data plate.
        guide: ``guide(x)``.
        params: Parameter values (``svi.get_params(state)``).
        x: ``[B, D]`` batch.
        num_samples: ``M``.
        rng_key: A JAX key.
        chunk_size: Samples drawn at once (memory ``chunk_size * B * width``); all if ``None``.

    Returns:
        :math:`\log\frac1M\sum_m w_{b,m}` for each data point ``b``.
    """
    import jax
    import jax.numpy as jnp

    chunks = list(_chunks(num_samples, chunk_size))
    keys = jax.random.split(rng_key, len(chunks))
    parts = [
        jax.scipy.special.logsumexp(
            _numpyro_log_weights_fn()(model, guide, params, x, size, key), axis=0
        )
        for size, key in zip(chunks, keys, strict=True)
    ]
    return jax.scipy.special.logsumexp(jnp.stack(parts), axis=0) - math.log(num_samples)


# -- Pyro ---------------------------------------------------------------------------------------


def pyro_log_weights(
    model: Callable, guide: Callable, x: Any, num_samples: int, max_plate_nesting: int = 1
) -> Any:
    """Log importance weights ``[num_samples, B]`` of a Pyro model/guide (no gradients).

    The samples are vectorised with a plate at ``dim=-(max_plate_nesting + 1)``, as Pyro's own
    ``vectorize_particles``.

    Args:
        model: ``model(x)`` with every sample site in the data plate at ``dim=-1``.
        guide: ``guide(x)``.
        x: ``[B, D]`` batch.
        num_samples: ``M``.
        max_plate_nesting: Plates nested in the model (1 for every model in :mod:`models`).

    Returns:
        ``log p(x, z_m) - log q(z_m | x)`` per sample and data point.
    """
    import pyro
    import torch
    from pyro import poutine
    from pyro.poutine.util import site_is_subsample

    with torch.no_grad(), pyro.plate(EVAL_PLATE, num_samples, dim=-(max_plate_nesting + 1)):
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
        sites = [
            {
                k: s
                for k, s in tr.nodes.items()
                if s["type"] == "sample" and not site_is_subsample(s)
            }
            for tr in (model_trace, guide_trace)
        ]
        return _log_weight(*sites, shape=(num_samples, x.shape[-2]))


def pyro_multi_sample_bound(
    model: Callable,
    guide: Callable,
    x: Any,
    num_samples: int,
    chunk_size: int | None = None,
    max_plate_nesting: int = 1,
) -> Any:
    r"""The ``M``-sample bound per data point, ``[B]``, for a Pyro model/guide.

    Args:
        model: ``model(x)`` with every sample site in the data plate at ``dim=-1``.
        guide: ``guide(x)``.
        x: ``[B, D]`` batch.
        num_samples: ``M``.
        chunk_size: Samples drawn at once; all if ``None``.
        max_plate_nesting: Plates nested in the model.

    Returns:
        :math:`\log\frac1M\sum_m w_{b,m}` for each data point ``b``.
    """
    import torch

    parts = [
        torch.logsumexp(pyro_log_weights(model, guide, x, size, max_plate_nesting), dim=0)
        for size in _chunks(num_samples, chunk_size)
    ]
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(num_samples)
