"""``gradient_variance``: R independent gradient estimates of a NumPyro loss, summarised."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import random
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.ops.provenance import eval_provenance

from ppl_arms.diagnostics import (
    GradientVarianceTable,
    check_num_estimates,
    gradient_table,
    parameter_sites,
)

__all__ = ["gradient_variance"]

DEFAULT_BATCH_SIZE = 128
"""Estimates per ``vmap`` chunk in :func:`gradient_variance` (see its ``batch_size``)."""


def _param_transforms(
    model: Callable,
    guide: Callable,
    params: Mapping[str, jax.Array],
    key: jax.Array,
    args: tuple,
    kwargs: dict,
) -> tuple[dict[str, Any], dict]:
    guide_trace = trace(substitute(seed(guide, key), data=params)).get_trace(*args, **kwargs)
    model_trace = trace(substitute(replay(seed(model, key), guide_trace), data=params)).get_trace(
        *args, **kwargs
    )
    transforms = {}
    for tr in (guide_trace, model_trace):
        for name, site in tr.items():
            if site["type"] == "param" and name in params:
                transforms[name] = biject_to(site["kwargs"].get("constraint", constraints.real))
    unknown = sorted(set(params) - set(transforms))
    if unknown:
        raise ValueError(
            f"params {unknown} are not param sites of the model or the guide; pass the "
            "parameters of this model and guide (e.g. svi.get_params(state))"
        )
    return transforms, guide_trace


def _guide_sites(guide_trace: dict) -> list[str]:
    return [
        name
        for name, site in guide_trace.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and not (site.get("infer") or {}).get("is_auxiliary")
    ]


def _site_dependencies(
    guide: Callable,
    guide_trace: dict,
    unconstrained: dict[str, jax.Array],
    constrain: Callable[[dict], dict],
    key: jax.Array,
    args: tuple,
    kwargs: dict,
) -> dict[str, tuple[str, ...]]:
    """Parameter name -> guide sites whose log-density or value depends on it (abstract evaluation).

    Non-reparameterised values are fixed (a discrete sample is not a function of the parameters);
    reparameterised values keep their dependence.
    """
    names = _guide_sites(guide_trace)
    fixed = {n: guide_trace[n]["value"] for n in names if not guide_trace[n]["fn"].has_rsample}

    def log_probs(**u: jax.Array) -> dict[str, tuple[jax.Array, jax.Array]]:
        fn = substitute(seed(guide, key), data={**constrain(u), **fixed})
        tr = trace(fn).get_trace(*args, **kwargs)
        return {n: (jnp.sum(tr[n]["fn"].log_prob(tr[n]["value"])), tr[n]["value"]) for n in names}

    deps = eval_provenance(log_probs, **unconstrained)
    site_params = {site: lp_deps | value_deps for site, (lp_deps, value_deps) in deps.items()}
    return parameter_sites(site_params, unconstrained)


def gradient_variance(
    loss: Any,
    model: Callable,
    guide: Callable,
    params: Mapping[str, jax.Array],
    *args: Any,
    num_estimates: int = 100,
    rng_key: jax.Array | None = None,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    **kwargs: Any,
) -> GradientVarianceTable:
    r"""Mean, variance and signal-to-noise ratio of ``num_estimates`` gradient estimates.

    Each estimate is :math:`\nabla_u` of ``loss.loss(key_r, constrain(u), model, guide, *args)``
    with an independent key, taken with respect to the **unconstrained** parameters ``u`` (what
    :class:`numpyro.infer.SVI`'s optimiser sees). The estimates are computed under ``jit``, mapped
    over the keys with ``vmap`` (or ``lax.map`` in chunks of ``batch_size`` to bound memory).

    Args:
        loss: Any NumPyro ELBO (ours, or the host's ``Trace_ELBO``, ``TraceGraph_ELBO``, ...).
        model: The model.
        guide: The guide.
        params: Constrained parameter values (``svi.get_params(state)``), for model and guide.
        *args: The model's arguments.
        num_estimates: ``R >= 2``.
        rng_key: JAX key (default ``PRNGKey(0)``).
        batch_size: Estimates computed at once (``None``: all ``R`` in one ``vmap``). The default
            bounds memory, and avoids a deadlock of jaxlib 0.10's CPU runtime: a model with
            batched linear algebra (``cholesky``, ``solve``) vmapped over thousands of
            estimates runs its LAPACK kernels in parallel on XLA's intra-op thread pool, and
            on a 2-core machine two such kernels can each wait for the pool's only other thread.
        **kwargs: The model's keyword arguments.

    Returns:
        A :class:`~ppl_arms.diagnostics.GradientVarianceTable` with a row per parameter; each row's
        ``sites`` lists the guide sites whose distribution depends on it.

    Example::

        table = gradient_variance(TraceARMS_ELBO(4), model, guide, result.params, x)
        print(table)                      # per-parameter |mean|, variance, SNR
        table.total_variance              # one number to compare estimators
    """
    check_num_estimates(num_estimates)
    rng_key = random.PRNGKey(0) if rng_key is None else rng_key
    setup_key, rng_key = random.split(rng_key)
    params = dict(params)
    transforms, guide_trace = _param_transforms(model, guide, params, setup_key, args, kwargs)
    unconstrained = {k: transforms[k].inv(v) for k, v in params.items()}

    def constrain(u: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return {k: transforms[k](v) for k, v in u.items()}

    def one(key: jax.Array) -> dict[str, jax.Array]:
        def objective(u: dict[str, jax.Array]) -> jax.Array:
            return loss.loss(key, constrain(u), model, guide, *args, **kwargs)

        return jax.grad(objective)(unconstrained)

    keys = random.split(rng_key, num_estimates)
    if batch_size is None:
        grads = jax.jit(jax.vmap(one))(keys)
    else:
        grads = jax.jit(lambda k: jax.lax.map(one, k, batch_size=batch_size))(keys)
    # Finish the estimates before tracing the guide again (an error surfaces here, not later).
    grads = jax.block_until_ready(grads)
    sites = _site_dependencies(
        guide, guide_trace, unconstrained, constrain, setup_key, args, kwargs
    )
    ordered = {k: grads[k] for k in params}  # jax returns dicts sorted by key
    return gradient_table(ordered, sites, repr(loss))
