"""The enumeration oracles' structure, written once; each backend supplies its tracing and arrays.

:class:`EnumerationOracle` discovers the guide's latent sites, runs the programs once per joint
discrete configuration (and Gauss–Hermite node), and sums the tables into the exact ELBO or the exact
multi-sample bound (:mod:`ppl_arms.testing.programs`). A backend subclass
(:mod:`ppl_arms.testing.pyro`, :mod:`ppl_arms.testing.numpyro`) implements the abstract methods:
tracing, reading traces, and the few array operations.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ppl_arms._typing import Array
from ppl_arms.core.estimators import DistKind
from ppl_arms.testing.programs import (
    DiscreteSite,
    configurations,
    exact_iwae_from_tables,
    gauss_hermite,
)

__all__ = ["EnumerationOracle"]

Trace = Any
"""A backend's trace (Pyro's ``Trace``, NumPyro's ordered dict of sites)."""

Setter = Callable[[Any], Array]
"""The value of a fixed guide site, as a function of its distribution."""


class EnumerationOracle(abc.ABC):
    """Exact ELBO and multi-sample bound of small programs by enumeration (backend-neutral part)."""

    # -- what a backend supplies -------------------------------------------------------------------

    @abc.abstractmethod
    def latent_sites(self, guide: Callable, args: tuple, kwargs: dict) -> Iterable[dict[str, Any]]:
        """The latent sample sites (not observed, not subsample sites) of one run of ``guide``."""

    @abc.abstractmethod
    def unwrap(self, site: dict[str, Any]) -> Any:
        """A latent site's unwrapped distribution (the adapter's ``_sites.unwrap``)."""

    @abc.abstractmethod
    def normal(self, fn: Any) -> Any:
        """The scalar ``Normal`` inside ``fn``; a ``ValueError`` if there is none."""

    @abc.abstractmethod
    def flat_list(self, x: Array) -> list[Any]:
        """The entries of ``x`` as a flat Python list."""

    @abc.abstractmethod
    def fixed_value(self, site: DiscreteSite, index: Any, fn: Any) -> Array:
        """The value of discrete ``site`` at category (or support) ``index``, given its ``fn``."""

    @abc.abstractmethod
    def run(
        self, model: Callable, guide: Callable, values: dict[str, Setter], args: tuple, kwargs: dict
    ) -> tuple[Trace, Trace]:
        """Model and guide traces with the guide sites fixed by ``values``, log-probs computed."""

    @abc.abstractmethod
    def sample_sites(self, trace: Trace) -> Iterable[dict[str, Any]]:
        """The sample sites of a trace from :meth:`run` (each with its scaled ``"log_prob"``)."""

    @abc.abstractmethod
    def log_prob_sum(self, trace: Trace) -> Array:
        """The scaled, masked log-density of a trace from :meth:`run`."""

    @abc.abstractmethod
    def log_q(self, guide_trace: Trace, sites: list[DiscreteSite]) -> Array:
        """Unscaled, unmasked log-probability of the discrete guide sites (the sampling law)."""

    @abc.abstractmethod
    def sum_to_frames(self, trace_terms: list[tuple[Any, Array]], frames: set[Any]) -> Array:
        """Sum ``(cond_indep_stack, log_prob)`` terms down to ``frames``, flattened."""

    @abc.abstractmethod
    def exp(self, x: Array) -> Array:
        """Elementwise exponential."""

    @abc.abstractmethod
    def stack(self, xs: list[Array]) -> Array:
        """Stack along a new leading axis."""

    # -- written once ------------------------------------------------------------------------------

    def discover(
        self, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[list[DiscreteSite], list[str]]:
        """The discrete sites to enumerate and the scalar Normal sites to integrate."""
        discrete, continuous = [], []
        for site in self.latent_sites(guide, args, kwargs):
            name, fn = site["name"], site["fn"]
            if fn.has_rsample:
                self.normal(fn)
                if int(np.prod(np.shape(site["value"]))) != 1:
                    raise ValueError(
                        f"the oracle integrates only scalar Normal sites; '{name}' is not"
                    )
                continuous.append(name)
                continue
            info = self.unwrap(site)
            support = None
            if info.kind is DistKind.OTHER:
                if not fn.has_enumerate_support:
                    raise ValueError(
                        f"the oracle enumerates finite discrete sites; '{name}' is not one"
                    )
                support = tuple(sorted(set(self.flat_list(fn.enumerate_support(expand=False)))))
            k = info.num_categories if support is None else len(support)
            one_hot = getattr(info, "one_hot", False)
            discrete.append(DiscreteSite(name, info.coord_shape, k, one_hot, support))
        return discrete, continuous

    def fixed_values(self, sites: list[DiscreteSite], config: dict[str, Any]) -> dict[str, Setter]:
        """The setters that fix each discrete site at its entry of one joint configuration."""
        return {
            s.name: (lambda fn, s=s, index=config[s.name]: self.fixed_value(s, index, fn))
            for s in sites
        }

    def exact_elbo(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict, num_nodes: int
    ) -> Array:
        """The exact ELBO (see the backends' ``exact_elbo``)."""
        discrete, continuous = self.discover(guide, args, kwargs)
        nodes, weights = gauss_hermite(num_nodes, len(continuous)) if continuous else ([[]], [1.0])
        total = 0.0
        for config in configurations(discrete):
            values = self.fixed_values(discrete, config)
            for node, weight in zip(nodes, weights, strict=True):
                for name, eps in zip(continuous, node, strict=True):
                    values[name] = lambda fn, eps=float(eps): (
                        self.normal(fn).loc + self.normal(fn).scale * eps
                    )
                model_trace, guide_trace = self.run(model, guide, values, args, kwargs)
                objective = self.log_prob_sum(model_trace) - self.log_prob_sum(guide_trace)
                q = self.exp(self.log_q(guide_trace, discrete))
                total = total + q * float(weight) * objective
        return total

    def exact_iwae(
        self,
        model: Callable,
        guide: Callable,
        args: tuple,
        kwargs: dict,
        num_particles: int,
        bound_plates: tuple[str, ...] | None,
    ) -> Array:
        """The exact multi-sample bound (see the backends' ``exact_iwae``)."""
        discrete, continuous = self.discover(guide, args, kwargs)
        if continuous:
            raise ValueError("exact_iwae supports discrete guides only")
        log_q, log_w = [], []
        for config in configurations(discrete):
            values = self.fixed_values(discrete, config)
            model_trace, guide_trace = self.run(model, guide, values, args, kwargs)
            stacks = [set(s["cond_indep_stack"]) for s in self.sample_sites(model_trace)]
            common = set.intersection(*stacks)
            if bound_plates is not None:
                common = {f for f in common if f.name in bound_plates}
            terms = [
                (site["cond_indep_stack"], sign * site["log_prob"])
                for tr, sign in ((model_trace, 1.0), (guide_trace, -1.0))
                for site in self.sample_sites(tr)
            ]
            log_w.append(self.sum_to_frames(terms, common))
            log_q.append(self.log_q(guide_trace, discrete))
        return exact_iwae_from_tables(self.stack(log_q), self.stack(log_w), num_particles)
