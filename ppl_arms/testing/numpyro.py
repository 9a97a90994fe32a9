"""Exact ELBO and IWAE objectives of small NumPyro programs by enumeration (test oracles).

Discrete guide sites are enumerated jointly; scalar ``Normal`` guide sites are integrated with
Gauss–Hermite quadrature (see :mod:`ppl_arms.testing.programs`). The objectives are differentiable
functions of ``param_map``, so ``jax.grad`` gives exact gradients. Run the programs with full data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from numpyro import distributions as dist
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.infer.elbo import MultiFrameTensor
from numpyro.primitives import Messenger

from ppl_arms.core.estimators import DistKind
from ppl_arms.numpyro._sites import unwrap
from ppl_arms.testing.programs import (
    DiscreteSite,
    configurations,
    exact_iwae_from_tables,
    gauss_hermite,
)

__all__ = ["exact_elbo", "exact_iwae"]


class _Fix(Messenger):
    def __init__(self, fn: Callable, values: dict[str, Callable[[Any], jax.Array]]) -> None:
        super().__init__(fn)
        self.values = values

    def process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and msg["name"] in self.values and not msg["is_observed"]:
            msg["value"] = self.values[msg["name"]](msg["fn"])


def _normal(fn: Any) -> dist.Normal:
    while isinstance(fn, dist.Independent | dist.ExpandedDistribution):
        fn = fn.base_dist
    if not isinstance(fn, dist.Normal):
        raise ValueError(
            f"the oracle integrates only scalar Normal guide sites, got {type(fn).__name__}"
        )
    return fn


def _log_probs(tr: dict) -> None:
    for site in tr.values():
        if site["type"] == "sample":
            lp = site["fn"].log_prob(site["value"])
            site["log_prob"] = lp if site["scale"] is None else site["scale"] * lp


def _programs(model: Callable, guide: Callable, param_map: dict) -> tuple[Callable, Callable]:
    return (
        seed(substitute(model, data=param_map), rng_seed=0),
        seed(substitute(guide, data=param_map), rng_seed=0),
    )


def _support(fn: Any, name: str) -> tuple[float, ...]:
    if not fn.has_enumerate_support:
        raise ValueError(f"the oracle enumerates finite discrete sites; '{name}' is not one")
    values = jnp.reshape(fn.enumerate_support(expand=False), -1).tolist()
    return tuple(sorted(set(values)))


def _value(site: DiscreteSite, index: Any) -> jax.Array:
    if site.support is not None:
        return jnp.asarray(site.support)[jnp.asarray(index)]
    return jnp.asarray(index)


def _discover(guide: Callable, args: tuple, kwargs: dict) -> tuple[list[DiscreteSite], list[str]]:
    tr = trace(guide).get_trace(*args, **kwargs)
    discrete, continuous = [], []
    for name, site in tr.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if site["fn"].has_rsample:
            _normal(site["fn"])
            if jnp.size(site["value"]) != 1:
                raise ValueError(f"the oracle integrates only scalar Normal sites; '{name}' is not")
            continuous.append(name)
        else:
            info = unwrap(site["fn"])
            support = None
            if info.kind is DistKind.OTHER:
                support = _support(site["fn"], name)
            k = info.num_categories if support is None else len(support)
            discrete.append(DiscreteSite(name, info.coord_shape, k, False, support))
    return discrete, continuous


def _run(model: Callable, guide: Callable, values: dict, args: tuple, kwargs: dict) -> tuple:
    guide_trace = trace(_Fix(guide, values)).get_trace(*args, **kwargs)
    model_trace = trace(replay(model, guide_trace)).get_trace(*args, **kwargs)
    _log_probs(guide_trace)
    _log_probs(model_trace)
    return model_trace, guide_trace


def _log_q(guide_trace: dict, sites: list[DiscreteSite]) -> jax.Array:
    total = 0.0
    for s in sites:
        site = guide_trace[s.name]
        info = unwrap(site["fn"])
        if info.kind is DistKind.OTHER:
            total = total + jnp.sum(info.unmasked_log_prob(site["value"]))
        else:
            total = total + jnp.sum(info.base.log_prob(site["value"]))
    return total


def _sum(tr: dict) -> jax.Array:
    return sum(jnp.sum(s["log_prob"]) for s in tr.values() if s["type"] == "sample")


def exact_elbo(
    model: Callable, guide: Callable, param_map: dict, *args: Any, num_nodes: int = 8, **kwargs: Any
) -> jax.Array:
    """The exact ELBO (scaled and masked as the losses see it), differentiable in ``param_map``.

    Args:
        model: A NumPyro model without subsampling.
        guide: Its guide: Bernoulli/categorical sites (enumerated) and scalar Normal sites
            (Gauss–Hermite, ``num_nodes`` nodes each).
        param_map: Parameter values substituted into both programs.
        *args: Positional arguments of both programs.
        num_nodes: Gauss–Hermite nodes per continuous site.
        **kwargs: Keyword arguments of both programs.

    Returns:
        A 0-d array.
    """
    model, guide = _programs(model, guide, param_map)
    discrete, continuous = _discover(guide, args, kwargs)
    nodes, weights = gauss_hermite(num_nodes, len(continuous)) if continuous else ([[]], [1.0])
    total = 0.0
    for config in configurations(discrete):
        values = {s.name: (lambda fn, s=s, v=config[s.name]: _value(s, v)) for s in discrete}
        for node, weight in zip(nodes, weights, strict=True):
            for name, eps in zip(continuous, node, strict=True):
                values[name] = lambda fn, eps=eps: _normal(fn).loc + _normal(fn).scale * float(eps)
            model_trace, guide_trace = _run(model, guide, values, args, kwargs)
            objective = _sum(model_trace) - _sum(guide_trace)
            total = total + jnp.exp(_log_q(guide_trace, discrete)) * float(weight) * objective
    return total


def exact_iwae(
    model: Callable,
    guide: Callable,
    param_map: dict,
    *args: Any,
    num_particles: int,
    bound_plates: tuple[str, ...] | None = None,
    **kwargs: Any,
) -> jax.Array:
    """The exact multi-sample bound (per element of the bound plates, summed).

    Args:
        model: A NumPyro model without subsampling.
        guide: Its guide, with Bernoulli/categorical latent sites only.
        param_map: Parameter values substituted into both programs.
        *args: Positional arguments of both programs.
        num_particles: ``n``.
        bound_plates: ``None`` (plates common to every model sample site), ``()`` or plate names.
        **kwargs: Keyword arguments of both programs.

    Returns:
        A 0-d array.
    """
    model, guide = _programs(model, guide, param_map)
    discrete, continuous = _discover(guide, args, kwargs)
    if continuous:
        raise ValueError("exact_iwae supports discrete guides only")
    log_q, log_w = [], []
    for config in configurations(discrete):
        values = {s.name: (lambda fn, s=s, v=config[s.name]: _value(s, v)) for s in discrete}
        model_trace, guide_trace = _run(model, guide, values, args, kwargs)
        stacks = [set(s["cond_indep_stack"]) for s in model_trace.values() if s["type"] == "sample"]
        common = set.intersection(*stacks)
        if bound_plates is not None:
            common = {f for f in common if f.name in bound_plates}
        terms = MultiFrameTensor()
        for tr, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for site in tr.values():
                if site["type"] == "sample":
                    terms.add((site["cond_indep_stack"], sign * site["log_prob"]))
        log_w.append(jnp.reshape(terms.sum_to(list(common)), -1))
        log_q.append(_log_q(guide_trace, discrete))
    return exact_iwae_from_tables(jnp.stack(log_q), jnp.stack(log_w), num_particles)
