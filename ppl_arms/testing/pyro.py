"""Exact ELBO and IWAE objectives of small Pyro programs by enumeration (test oracles).

Discrete guide sites are enumerated jointly; scalar ``Normal`` guide sites are integrated with
Gauss–Hermite quadrature (see :mod:`ppl_arms.testing.programs`). The objectives are differentiable
functions of the parameters in Pyro's param store, so ``torch.autograd.grad`` gives exact gradients.
Run the programs with full data (no subsampling): the oracle is the full-data objective.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
from ppl_arms.testing._oracle import EnumerationOracle, Setter
from ppl_arms.testing.programs import DiscreteSite

__all__ = ["exact_elbo", "exact_iwae"]


class _Fix(Messenger):
    def __init__(self, values: dict[str, Setter]) -> None:
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["name"] in self.values and not msg["is_observed"]:
            msg["value"] = self.values[msg["name"]](msg["fn"])


class _PyroOracle(EnumerationOracle):
    def latent_sites(self, guide: Callable, args: tuple, kwargs: dict) -> Iterable[dict[str, Any]]:
        tr = poutine.trace(guide).get_trace(*args, **kwargs)
        return [
            s
            for s in tr.nodes.values()
            if s["type"] == "sample"
            and not s["is_observed"]
            and not isinstance(s["fn"], _Subsample)
        ]

    def unwrap(self, site: dict[str, Any]) -> Any:
        return unwrap(site["fn"], site.get("mask"))

    def normal(self, fn: Any) -> Normal:
        while isinstance(fn, Independent):
            fn = fn.base_dist
        if not isinstance(fn, Normal):
            raise ValueError(
                f"the oracle integrates only scalar Normal guide sites, got {type(fn).__name__}"
            )
        return fn

    def flat_list(self, x: torch.Tensor) -> list[Any]:
        return x.reshape(-1).tolist()

    def fixed_value(self, site: DiscreteSite, index: Any, fn: Any) -> torch.Tensor:
        z = torch.as_tensor(index)
        info = unwrap(fn)
        dtype = torch.get_default_dtype()
        if info.one_hot:
            return torch.nn.functional.one_hot(z, site.num_categories).to(dtype)
        if site.support is not None:
            return torch.as_tensor(site.support, dtype=dtype)[z]
        if info.kind is DistKind.BERNOULLI:
            return z.to(dtype)
        return z

    def run(
        self, model: Callable, guide: Callable, values: dict[str, Setter], args: tuple, kwargs: dict
    ) -> tuple[Any, Any]:
        guide_trace = poutine.trace(_Fix(values)(guide)).get_trace(*args, **kwargs)
        fn = poutine.replay(model, trace=guide_trace)
        model_trace = poutine.trace(fn).get_trace(*args, **kwargs)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        guide_trace.compute_log_prob()
        model_trace.compute_log_prob()
        return model_trace, guide_trace

    def sample_sites(self, trace: Any) -> Iterable[dict[str, Any]]:
        return [s for s in trace.nodes.values() if s["type"] == "sample"]

    def log_prob_sum(self, trace: Any) -> torch.Tensor:
        return trace.log_prob_sum()

    def log_q(self, guide_trace: Any, sites: list[DiscreteSite]) -> torch.Tensor:
        total = 0.0
        for s in sites:
            site = guide_trace.nodes[s.name]
            info = unwrap(site["fn"])
            if info.kind is DistKind.OTHER:
                total = total + info.unmasked_log_prob(site["value"]).sum()
            else:
                total = total + info.base.log_prob(info.coordinates(site["value"])).sum()
        return total

    def sum_to_frames(self, trace_terms: list[tuple[Any, torch.Tensor]], frames: set) -> Any:
        terms = MultiFrameTensor(*trace_terms)
        return torch.as_tensor(terms.sum_to(frames)).reshape(-1)

    def exp(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)

    def stack(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(xs)


_ORACLE = _PyroOracle()


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
    return _ORACLE.exact_elbo(model, guide, args, kwargs, num_nodes)


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
    return _ORACLE.exact_iwae(model, guide, args, kwargs, num_particles, bound_plates)
