"""Exact ELBO and IWAE objectives of small NumPyro programs by enumeration (test oracles).

Discrete guide sites are enumerated jointly; scalar ``Normal`` guide sites are integrated with
Gauss–Hermite quadrature (see :mod:`ppl_arms.testing.programs`). The objectives are differentiable
functions of ``param_map``, so ``jax.grad`` gives exact gradients. Run the programs with full data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
from numpyro import distributions as dist
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.infer.elbo import MultiFrameTensor
from numpyro.primitives import Messenger

from ppl_arms.core.estimators import DistKind
from ppl_arms.numpyro._sites import unwrap
from ppl_arms.testing._oracle import EnumerationOracle, Setter
from ppl_arms.testing.programs import DiscreteSite

__all__ = ["exact_elbo", "exact_iwae"]


class _Fix(Messenger):
    def __init__(self, fn: Callable, values: dict[str, Setter]) -> None:
        super().__init__(fn)
        self.values = values

    def process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and msg["name"] in self.values and not msg["is_observed"]:
            msg["value"] = self.values[msg["name"]](msg["fn"])


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


class _NumPyroOracle(EnumerationOracle):
    def latent_sites(self, guide: Callable, args: tuple, kwargs: dict) -> Iterable[dict[str, Any]]:
        tr = trace(guide).get_trace(*args, **kwargs)
        return [s for s in tr.values() if s["type"] == "sample" and not s["is_observed"]]

    def unwrap(self, site: dict[str, Any]) -> Any:
        return unwrap(site["fn"])

    def normal(self, fn: Any) -> dist.Normal:
        while isinstance(fn, dist.Independent | dist.ExpandedDistribution):
            fn = fn.base_dist
        if not isinstance(fn, dist.Normal):
            raise ValueError(
                f"the oracle integrates only scalar Normal guide sites, got {type(fn).__name__}"
            )
        return fn

    def flat_list(self, x: jax.Array) -> list[Any]:
        return jnp.reshape(x, -1).tolist()

    def fixed_value(self, site: DiscreteSite, index: Any, fn: Any) -> jax.Array:
        if site.support is not None:
            return jnp.asarray(site.support)[jnp.asarray(index)]
        return jnp.asarray(index)

    def run(
        self, model: Callable, guide: Callable, values: dict[str, Setter], args: tuple, kwargs: dict
    ) -> tuple[dict, dict]:
        guide_trace = trace(_Fix(guide, values)).get_trace(*args, **kwargs)
        model_trace = trace(replay(model, guide_trace)).get_trace(*args, **kwargs)
        _log_probs(guide_trace)
        _log_probs(model_trace)
        return model_trace, guide_trace

    def sample_sites(self, trace: dict) -> Iterable[dict[str, Any]]:
        return [s for s in trace.values() if s["type"] == "sample"]

    def log_prob_sum(self, trace: dict) -> jax.Array:
        return sum(jnp.sum(s["log_prob"]) for s in self.sample_sites(trace))

    def log_q(self, guide_trace: dict, sites: list[DiscreteSite]) -> jax.Array:
        total = 0.0
        for s in sites:
            site = guide_trace[s.name]
            info = unwrap(site["fn"])
            if info.kind is DistKind.OTHER:
                total = total + jnp.sum(info.unmasked_log_prob(site["value"]))
            else:
                total = total + jnp.sum(info.base.log_prob(site["value"]))
        return total

    def sum_to_frames(self, trace_terms: list[tuple[Any, jax.Array]], frames: set) -> jax.Array:
        return jnp.reshape(MultiFrameTensor(*trace_terms).sum_to(list(frames)), -1)

    def exp(self, x: jax.Array) -> jax.Array:
        return jnp.exp(x)

    def stack(self, xs: list[jax.Array]) -> jax.Array:
        return jnp.stack(xs)


_ORACLE = _NumPyroOracle()


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
    return _ORACLE.exact_elbo(model, guide, args, kwargs, num_nodes)


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
    return _ORACLE.exact_iwae(model, guide, args, kwargs, num_particles, bound_plates)
