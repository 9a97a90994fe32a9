"""One particle's traces (coupled guide, model replay, log-densities) and their normaliser.

:func:`particle_traces` runs the programs of one particle inside the particle ``vmap``;
:func:`normalise` turns its traces into backend-neutral records (:mod:`ppl_arms._records`); the
particle's outputs leave the ``vmap`` as :class:`ParticleOutputs`, a typed pytree whose static
fields (the site plans inside the carriers, the sites' labels, the bound's scale) travel in its
tree structure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.infer.util import _without_rsample_stop_gradient
from numpyro.util import check_model_guide_match

from ppl_arms._checks import check_guide_covers_model, check_log_densities
from ppl_arms._records import Frame, SiteGradient, SiteRecord, Traces
from ppl_arms.core import carriers
from ppl_arms.numpyro._shapes import check_plate_dims
from ppl_arms.numpyro.coupling import Coupling

__all__ = [
    "ParticleOutputs",
    "ParticleTraces",
    "check_finite",
    "normalise",
    "particle_traces",
    "seed_plates",
    "site_log_prob",
]

for _carrier in (
    carriers.LogitCarrier,
    carriers.ScoreCarrier,
    carriers.BaseCarrier,
    carriers.LogProbCarrier,
    carriers.GradientCarrier,
    carriers.LogitBoundCarrier,
    carriers.LogProbBoundCarrier,
):
    jax.tree_util.register_dataclass(_carrier)  # values leave the particle vmap as pytrees

_PLATE_ONLY = ["sample", "prng_key", "control_flow"]


def seed_plates(fn: Callable, key: jax.Array) -> Callable:
    """Seed only the plates of ``fn`` with ``key``, so all particles share subsample indices."""
    return seed(fn, key, hide_types=_PLATE_ONLY)


class ParticleTraces:
    """Guide and model traces of one particle, plus the coupling handler that drew the guide."""

    def __init__(self, model_trace: dict, guide_trace: dict, coupling: Coupling) -> None:
        self.model_trace = model_trace
        self.guide_trace = guide_trace
        self.coupling = coupling

    def mutable_state(self) -> dict[str, Any]:
        """Values of ``numpyro.mutable`` sites (guide first, then model)."""
        state = {}
        for tr in (self.guide_trace, self.model_trace):
            state.update({k: s["value"] for k, s in tr.items() if s["type"] == "mutable"})
        return state


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class ParticleOutputs:
    """What one particle returns from the particle ``vmap`` (batched along the particle axis).

    Attributes:
        objective: The particle's ELBO ``[]``, or its log-weights over the bound's plates.
        carriers: Per estimated site, its carrier (with its plan as static fields).
        signals: Per estimated site, its learning signal (ELBO losses; else empty).
        mutable: Values of ``numpyro.mutable`` sites.
        log_densities: Each sample site's summed log-density
            (:func:`~ppl_arms._checks.log_density_sums`), or ``None``.
        labels: The sites of ``log_densities`` (static).
        scale: The bound's subsampling scale (static; IWAE).
    """

    objective: jax.Array
    carriers: tuple[Any, ...]
    signals: tuple[jax.Array, ...]
    mutable: dict[str, Any]
    log_densities: jax.Array | None
    labels: tuple[str, ...] = field(metadata={"static": True})
    scale: float = field(default=1.0, metadata={"static": True})

    def first_mutable(self) -> dict[str, Any] | None:
        """The mutable state of the first particle (``None`` without mutable sites)."""
        return jax.tree.map(lambda x: x[0], self.mutable) if self.mutable else None


def check_finite(out: ParticleOutputs) -> None:
    """Raise :func:`~ppl_arms.config.log_density_error` for a non-finite log-density.

    Only concrete values are checked (an eager call); under ``jit``, ``grad`` or ``vmap`` the
    values are tracers and the loss reports the infinity instead (see ``docs/errors.md``).
    """
    if out.log_densities is None or isinstance(out.log_densities, jax.core.Tracer):
        return
    check_log_densities(out.labels, np.asarray(out.log_densities))


def _frames(site: dict[str, Any], tr: dict[str, Any]) -> frozenset[Frame]:
    return frozenset(
        Frame(f.name, f.dim, f.size, tr[f.name]["args"][0]) for f in site["cond_indep_stack"]
    )


def _records(
    tr: dict[str, Any],
    deps: Mapping[str, frozenset[str]],
    coupling: Coupling | None,
    gradients: Mapping[str, SiteGradient],
) -> tuple[SiteRecord, ...]:
    return tuple(
        SiteRecord(
            name,
            site["log_prob"],
            _frames(site, tr),
            frozenset(deps.get(name, ())),
            coupling.latent(name, site["value"], site["scale"], gradients.get(name))
            if coupling
            else None,
        )
        for name, site in tr.items()
        if site["type"] == "sample"
    )


def normalise(
    traces: ParticleTraces,
    deps: tuple[Mapping, Mapping] | None = None,
    gradients: Mapping[str, SiteGradient] | None = None,
) -> Traces:
    """The records of one particle's traces.

    Args:
        traces: The particle's traces.
        deps: Model and guide provenance (:func:`numpyro.infer.elbo.get_nonreparam_deps`) for
            dependency-graph signals, or ``None``.
        gradients: Per site whose estimator reads ``df_dz``, its :class:`SiteGradient`.
    """
    model_deps, guide_deps = deps or ({}, {})
    gradients = gradients or {}
    return Traces(
        _records(traces.model_trace, model_deps, None, gradients),
        _records(traces.guide_trace, guide_deps, traces.coupling, gradients),
    )


def site_log_prob(site: dict[str, Any], value: jax.Array) -> jax.Array:
    """A sample site's log-density at ``value``, times its scale (masked by its distribution)."""
    if site["intermediates"]:
        lp = site["fn"].log_prob(value, site["intermediates"])
    else:
        lp = site["fn"].log_prob(value)
    return lp if site["scale"] is None else site["scale"] * lp


def _add_log_probs(tr: dict) -> None:
    for site in tr.values():
        if site["type"] == "sample" and "log_prob" not in site:
            site["log_prob"] = site_log_prob(site, site["value"])


def particle_traces(
    model: Callable,
    guide: Callable,
    param_map: dict[str, jax.Array],
    args: tuple,
    kwargs: dict,
    particle_key: jax.Array,
    coupling: Callable[[Callable], Coupling],
) -> ParticleTraces:
    """Run the coupled guide, replay the model against it, and compute scaled ``log_prob``s.

    Args:
        model: The model (plates already seeded by :func:`seed_plates`).
        guide: The guide (plates already seeded by :func:`seed_plates`).
        param_map: Constrained parameter values, substituted into both programs.
        args: Positional arguments of model and guide.
        kwargs: Keyword arguments of model and guide.
        particle_key: This particle's key.
        coupling: Builds the :class:`Coupling` handler around the seeded guide.

    Returns:
        The traces, with ``site["log_prob"]`` = scale * masked log-density at every sample site.
    """
    model_key, guide_key = jax.random.split(particle_key)
    handler = coupling(substitute(seed(guide, guide_key), data=param_map))
    with _without_rsample_stop_gradient():
        guide_trace = trace(handler).get_trace(*args, **kwargs)
    model_fn = substitute(replay(seed(model, model_key), guide_trace), data=param_map)
    model_trace = trace(model_fn).get_trace(*args, **kwargs)
    latents = {
        name: site["fn"].has_rsample
        for name, site in model_trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }
    check_guide_covers_model(latents, guide_trace)
    check_model_guide_match(model_trace, guide_trace)
    check_plate_dims("guide", guide_trace)
    check_plate_dims("model", model_trace)
    _add_log_probs(guide_trace)
    _add_log_probs(model_trace)
    return ParticleTraces(model_trace, guide_trace, handler)
