"""The Pyro normaliser: coupled ``Trace`` objects in, backend-neutral site records out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pyro.ops.provenance import detach_provenance, get_provenance
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from pyro.util import ignore_jit_warnings

from ppl_arms._checks import check_log_densities, log_density_labels, log_density_sums
from ppl_arms._records import Frame, SiteGradient, SiteRecord, Traces
from ppl_arms.pyro.coupling import Coupling

__all__ = ["check_finite", "model_latents", "normalise"]


def model_latents(model_trace: Trace) -> dict[str, bool]:
    """The model's latent sample sites (not a plate's subsample site), with ``has_rsample``."""
    return {
        name: bool(getattr(site["fn"], "has_rsample", False))
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }


def _frames(site: dict[str, Any]) -> frozenset[Frame]:
    # Sizes are 0-d tensors under torch.jit.trace; frames compare by value (as Pyro's do).
    with ignore_jit_warnings(["Converting a tensor to a Python"]):
        return frozenset(
            Frame(f.name, f.dim, int(f.size), int(f.full_size or f.size), f.counter)
            for f in site["cond_indep_stack"]
        )


def _records(
    tr: Trace,
    coupling: Coupling | None,
    provenance: bool,
    gradients: Mapping[str, SiteGradient],
) -> tuple[SiteRecord, ...]:
    records = []
    for name, site in tr.nodes.items():
        if site["type"] != "sample":
            continue
        upstream = frozenset(get_provenance(site["log_prob_sum"])) if provenance else frozenset()
        latent = None
        if coupling:
            latent = coupling.latent(name, site["value"], site["scale"], gradients.get(name))
        lp = detach_provenance(site["log_prob"])
        records.append(SiteRecord(name, lp, _frames(site), upstream, latent))
    return tuple(records)


def normalise(
    model_trace: Trace,
    guide_trace: Trace,
    coupling: Coupling,
    provenance: bool = False,
    gradients: Mapping[str, SiteGradient] | None = None,
) -> Traces:
    """The records of a coupled guide trace and its model replay (log-probs computed).

    Args:
        model_trace: The model's trace.
        guide_trace: The coupled guide's trace.
        coupling: The handler that drew the guide.
        provenance: Read the dependency provenance of each log-density (TraceGraph).
        gradients: Per site whose estimator reads ``df_dz``, its :class:`SiteGradient`.
    """
    gradients = gradients or {}
    return Traces(
        _records(model_trace, None, provenance, gradients),
        _records(guide_trace, coupling, provenance, gradients),
    )


def check_finite(traces: Traces) -> None:
    """Raise :func:`~ppl_arms.config.log_density_error` for a non-finite log-density.

    One host synchronisation. Skipped while :func:`torch.jit.trace` records a loss (no Python
    branching on values there); the loss then reports the infinity instead.
    """
    sums = log_density_sums(traces)
    if sums is None or torch.jit.is_tracing():
        return
    check_log_densities(log_density_labels(traces), sums.cpu().numpy())
