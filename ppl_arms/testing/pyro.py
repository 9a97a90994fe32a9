"""Exact ELBO and IWAE objectives of small Pyro programs by enumeration (test oracles).

Discrete guide sites are enumerated jointly; scalar ``Normal`` guide sites are integrated with
Gauss–Hermite quadrature (see :mod:`ppl_arms.testing.programs`). The objectives are differentiable
functions of the parameters in Pyro's param store, so ``torch.autograd.grad`` gives exact gradients.
Run the programs with full data (no subsampling): the oracle is the full-data objective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine
from pyro.distributions import Normal
from pyro.infer.util import MultiFrameTensor
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import Independent

from ppl_arms.core.estimators import DistKind
from ppl_arms.pyro._sites import unwrap
from ppl_arms.testing.programs import (
    DiscreteSite,
    configurations,
    exact_iwae_from_tables,
    gauss_hermite,
)

__all__ = ["exact_elbo", "exact_iwae"]


class _Fix(Messenger):
    def __init__(self, values: dict[str, Callable[[Any], torch.Tensor]]) -> None:
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["name"] in self.values and not msg["is_observed"]:
            msg["value"] = self.values[msg["name"]](msg["fn"])


def _normal(fn: Any) -> Normal:
    while isinstance(fn, Independent):
        fn = fn.base_dist
    if not isinstance(fn, Normal):
        raise ValueError(
            f"the oracle integrates only scalar Normal guide sites, got {type(fn).__name__}"
        )
    return fn


def _support(fn: Any, name: str) -> tuple[float, ...]:
    if not fn.has_enumerate_support:
        raise ValueError(f"the oracle enumerates finite discrete sites; '{name}' is not one")
    values = fn.enumerate_support(expand=False).reshape(-1).tolist()
    return tuple(sorted(set(values)))


def _discover(guide: Callable, args: tuple, kwargs: dict) -> tuple[list[DiscreteSite], list[str]]:
    tr = poutine.trace(guide).get_trace(*args, **kwargs)
    discrete, continuous = [], []
    for name, site in tr.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or isinstance(site["fn"], _Subsample):
            continue
        if site["fn"].has_rsample:
            _normal(site["fn"])
            if site["value"].numel() != 1:
                raise ValueError(f"the oracle integrates only scalar Normal sites; '{name}' is not")
            continuous.append(name)
        else:
            info = unwrap(site["fn"], site.get("mask"))
            support = None
            if info.kind is DistKind.OTHER:
                support = _support(site["fn"], name)
            k = info.num_categories if support is None else len(support)
            discrete.append(DiscreteSite(name, info.coord_shape, k, info.one_hot, support))
    return discrete, continuous


def _run(model: Callable, guide: Callable, values: dict, args: tuple, kwargs: dict) -> tuple:
    guide_trace = poutine.trace(_Fix(values)(guide)).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    guide_trace = prune_subsample_sites(guide_trace)
    model_trace = prune_subsample_sites(model_trace)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return model_trace, guide_trace


def _fixed_values(sites: list[DiscreteSite], config: dict) -> dict:
    def setter(site: DiscreteSite) -> Callable:
        def value(fn: Any) -> torch.Tensor:
            z = torch.as_tensor(config[site.name])
            info = unwrap(fn)
            if info.one_hot:
                return torch.nn.functional.one_hot(z, site.num_categories).to(
                    torch.get_default_dtype()
                )
            if site.support is not None:
                return torch.as_tensor(site.support, dtype=torch.get_default_dtype())[z]
            if info.kind is DistKind.BERNOULLI:
                return z.to(torch.get_default_dtype())
            return z

        return value

    return {s.name: setter(s) for s in sites}


def _log_q(guide_trace: Any, sites: list[DiscreteSite]) -> torch.Tensor:
    total = 0.0
    for s in sites:
        site = guide_trace.nodes[s.name]
        info = unwrap(site["fn"])
        if info.kind is DistKind.OTHER:
            total = total + info.unmasked_log_prob(site["value"]).sum()
        else:
            total = total + info.base.log_prob(info.coordinates(site["value"])).sum()
    return total


def exact_elbo(
    model: Callable, guide: Callable, *args: Any, num_nodes: int = 8, **kwargs: Any
) -> torch.Tensor:
    """The exact ELBO (scaled and masked as the losses see it), differentiable in the params.

    Args:
        model: A Pyro model without subsampling.
        guide: Its guide: Bernoulli/categorical sites (enumerated) and scalar Normal sites
            (Gauss–Hermite, ``num_nodes`` nodes each).
        *args: Positional arguments of both programs.
        num_nodes: Gauss–Hermite nodes per continuous site.
        **kwargs: Keyword arguments of both programs.

    Returns:
        A 0-d tensor.
    """
    discrete, continuous = _discover(guide, args, kwargs)
    nodes, weights = gauss_hermite(num_nodes, len(continuous)) if continuous else ([[]], [1.0])
    total = 0.0
    for config in configurations(discrete):
        values = _fixed_values(discrete, config)
        for node, weight in zip(nodes, weights, strict=True):
            for name, eps in zip(continuous, node, strict=True):
                values[name] = lambda fn, eps=eps: _normal(fn).loc + _normal(fn).scale * float(eps)
            model_trace, guide_trace = _run(model, guide, values, args, kwargs)
            objective = model_trace.log_prob_sum() - guide_trace.log_prob_sum()
            total = total + torch.exp(_log_q(guide_trace, discrete)) * float(weight) * objective
    return total


def exact_iwae(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_particles: int,
    bound_plates: tuple[str, ...] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """The exact multi-sample bound (per element of the bound plates, summed).

    Args:
        model: A Pyro model without subsampling.
        guide: Its guide, with Bernoulli/categorical latent sites only.
        *args: Positional arguments of both programs.
        num_particles: ``n``.
        bound_plates: Plates the bound is taken per element of; ``None`` means the plates common
            to every model sample site (as ``TraceARMS_IWAE`` does), ``()`` the whole trace.
        **kwargs: Keyword arguments of both programs.

    Returns:
        A 0-d tensor.
    """
    discrete, continuous = _discover(guide, args, kwargs)
    if continuous:
        raise ValueError("exact_iwae supports discrete guides only")
    log_q, log_w = [], []
    for config in configurations(discrete):
        model_trace, guide_trace = _run(model, guide, _fixed_values(discrete, config), args, kwargs)
        stacks = [
            set(s["cond_indep_stack"]) for s in model_trace.nodes.values() if s["type"] == "sample"
        ]
        common = set.intersection(*stacks)
        if bound_plates is not None:
            common = {f for f in common if f.name in bound_plates}
        terms = MultiFrameTensor()
        for tr, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for site in tr.nodes.values():
                if site["type"] == "sample":
                    terms.add((site["cond_indep_stack"], sign * site["log_prob"]))
        log_w.append(torch.as_tensor(terms.sum_to(common)).reshape(-1))
        log_q.append(_log_q(guide_trace, discrete))
    return exact_iwae_from_tables(torch.stack(log_q), torch.stack(log_w), num_particles)
