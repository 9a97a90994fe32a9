r"""The objectives of the losses, written once on normalised site records.

* :func:`elbo_value`: :math:`\sum_{\text{model}}\log p-\sum_{\text{guide}}\log q` (summed over
  particles and elements; the estimated sites' ``log q`` detached, their gradient is the carrier's).
* :func:`trace_signals`: a site's learning signal is every ELBO term summed to the site's plates
  (the terms of its own plate element, plus every term outside its plates), as ``Trace_ELBO``.
* :func:`graph_signals`: only the terms downstream of the site (provenance), as
  ``TraceGraph_ELBO``.
* :func:`bound_frames` and :func:`log_weights`: the plates an IWAE bound is taken over, their
  subsampling scale :math:`s=\prod_f N_f/B_f`, and the log-weights
  :math:`\ell=(\sum\log p-\sum\log q)/s` summed to those plates.

Sums to plates follow Pyro's and NumPyro's ``MultiFrameTensor.sum_to``: terms are grouped by their
plates; a group is summed (keeping dims) over each of its plates not in the target, and its leading
singleton dims are squeezed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence

from ppl_arms._records import Frame, SiteRecord, Traces
from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.estimators import DistKind

__all__ = [
    "bound_frames",
    "elbo_value",
    "frame_sum",
    "graph_signals",
    "log_weights",
    "trace_signals",
]


def frame_sum(
    terms: Iterable[tuple[frozenset[Frame], Array]], target: Collection[Frame]
) -> Array | None:
    """Sum per-element terms to the plates ``target`` (``None`` when there are no terms).

    Args:
        terms: ``(frames, value)`` pairs: each value's plates and its per-element array.
        target: The plates to keep.
    """
    groups: dict[frozenset[Frame], Array] = {}
    for frames, value in terms:
        frames = frozenset(f for f in frames if f.dim is not None)  # vectorised plates only
        groups[frames] = groups[frames] + value if frames in groups else value
    total = None
    for frames, value in groups.items():
        ops = get_ops(value)
        for f in frames:
            if f not in target and ops.shape(value)[f.dim] != 1:
                value = ops.sum(value, axis=f.dim, keepdims=True)
        while ops.shape(value) and ops.shape(value)[0] == 1:
            value = ops.reshape(value, ops.shape(value)[1:])
        total = value if total is None else total + value
    return total


def _costs(traces: Traces) -> Iterable[tuple[SiteRecord, Array]]:
    """Every site with its detached ELBO term: ``log p`` for the model, ``-log q`` for the guide."""
    for site in traces.model:
        yield site, get_ops(site.log_prob).stop_gradient(site.log_prob)
    for site in traces.guide:
        yield site, -get_ops(site.log_prob).stop_gradient(site.log_prob)


def elbo_value(traces: Traces, zero: Array) -> Array:
    """The ELBO summed over particles and elements; estimated sites' ``log q`` detached.

    Args:
        traces: The records.
        zero: A zero scalar of the host (the value for programs without sample sites).
    """
    total = zero
    for site in traces.model:
        total = total + get_ops(site.log_prob).sum(site.log_prob)
    for site in traces.guide:
        ops = get_ops(site.log_prob)
        lp = ops.sum(site.log_prob)
        total = total - (ops.stop_gradient(lp) if site.latent is not None else lp)
    return total


def trace_signals(traces: Traces) -> dict[str, Array]:
    """Per estimated site, all ELBO terms summed to its plates (``Trace_ELBO``'s signal)."""
    terms = [(site.frames, cost) for site, cost in _costs(traces)]
    return {s.name: _signal(terms, s) for s in traces.latents}


def graph_signals(traces: Traces) -> dict[str, Array]:
    """Per estimated site, the ELBO terms downstream of it summed to its plates (``TraceGraph``)."""
    downstream: dict[str, list[tuple[frozenset[Frame], Array]]] = defaultdict(list)
    for site, cost in _costs(traces):
        for name in site.upstream:
            downstream[name].append((site.frames, cost))
    return {s.name: _signal(downstream[s.name], s) for s in traces.latents}


def _signal(terms: Sequence[tuple[frozenset[Frame], Array]], site: SiteRecord) -> Array:
    total = frame_sum(terms, site.frames)
    return get_ops(site.log_prob).const(0.0, site.log_prob) if total is None else total


def bound_frames(
    model: Sequence[SiteRecord], bound_plates: Sequence[str] | None, always: Collection[str] = ()
) -> tuple[frozenset[Frame], float]:
    r"""The plates an IWAE bound is taken over and their subsampling scale.

    Args:
        model: The model's sample sites.
        bound_plates: ``None`` for the plates common to every model sample site, else the names
            of some of them (``()``: the whole-trace bound).
        always: Plates always kept (Pyro's particle plate).

    Returns:
        The plates, and :math:`\\prod_f N_f/B_f` over them.

    Raises:
        ValueError: for a named plate that is not common to every model sample site, or a
            subsampled plate outside the bound's plates.
    """
    stacks = [s.frames for s in model]
    if not stacks:
        return frozenset(), 1.0  # no model sample site: nothing to take a bound over
    common = frozenset.intersection(*stacks)
    if bound_plates is not None:
        by_name = {f.name: f for f in common}
        for name in bound_plates:
            if name not in by_name:
                raise ValueError(
                    f"bound_plates names plate '{name}', which is not common to every sample "
                    f"site of the model; common plates are "
                    f"{sorted(k for k in by_name if k not in always)}"
                )
        common = frozenset(by_name[name] for name in (*bound_plates, *always))
    for stack in stacks:
        for frame in stack - common:
            if frame.full_size > frame.size:
                raise ValueError(
                    f"TraceARMS_IWAE subsamples plate '{frame.name}', which is not one of the "
                    "plates the bound is taken over; only plates common to every sample site "
                    "(e.g. a data plate around the whole model) may be subsampled"
                )
    scale = 1.0
    for frame in sorted(common, key=lambda f: f.dim):
        scale *= frame.full_size / frame.size
    return common, scale


def log_weights(traces: Traces, frames: Collection[Frame], scale: float) -> Array | None:
    """Log-weights summed to the bound's plates and divided by its scale (``None``: no sites).

    The estimated Bernoulli and categorical sites' ``log q`` enter detached: their direct
    gradient goes through the logit carrier (:class:`~ppl_arms.core.carriers.LogitBoundCarrier`).
    """
    terms = [(site.frames, site.log_prob) for site in traces.model]
    for site in traces.guide:
        lp = site.log_prob
        if site.latent is not None and site.latent.plan.kind is not DistKind.OTHER:
            lp = get_ops(lp).stop_gradient(lp)
        terms.append((site.frames, -lp))
    total = frame_sum(terms, frames)
    return None if total is None else total / scale
