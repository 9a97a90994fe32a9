"""One particle's guide and model traces, with coupling, checks and per-site log-densities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.infer.util import _without_rsample_stop_gradient
from numpyro.util import check_model_guide_match

from ppl_arms.config import log_density_error
from ppl_arms.numpyro._shapes import check_plate_dims
from ppl_arms.numpyro.coupling import Coupling

__all__ = [
    "ParticleTraces",
    "check_log_densities",
    "nonfinite_log_densities",
    "particle_traces",
    "seed_plates",
]

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

    def sample_sites(self, which: str) -> dict[str, dict[str, Any]]:
        """The ``sample`` sites of the ``"model"`` or ``"guide"`` trace."""
        tr = self.model_trace if which == "model" else self.guide_trace
        return {k: s for k, s in tr.items() if s["type"] == "sample"}

    def mutable_state(self) -> dict[str, Any]:
        """Values of ``numpyro.mutable`` sites (guide first, then model)."""
        state = {}
        for tr in (self.guide_trace, self.model_trace):
            state.update({k: s["value"] for k, s in tr.items() if s["type"] == "mutable"})
        return state


def nonfinite_log_densities(traces: ParticleTraces) -> dict[str, jax.Array]:
    """Per sample site, the sum of its non-finite ``log_prob`` entries (``0`` when all are finite).

    A particle output for :func:`check_log_densities`; unused under ``jit``, where XLA drops it.
    """
    out = {}
    for which in ("model", "guide"):
        for name, site in traces.sample_sites(which).items():
            lp = lax.stop_gradient(jnp.asarray(site["log_prob"]))
            out[f"{which} site '{name}'"] = jnp.sum(jnp.where(jnp.isfinite(lp), 0.0, lp))
    return out


def check_log_densities(nonfinite: dict[str, jax.Array]) -> None:
    """Raise :func:`~ppl_arms.config.log_density_error` for a site with a non-finite log-density.

    Only concrete values are checked (an eager call); under ``jit``, ``grad`` or ``vmap`` the
    values are tracers and the loss reports the infinity instead (see ``docs/errors.md``).

    Args:
        nonfinite: The per-particle outputs of :func:`nonfinite_log_densities`.
    """
    labels = sorted(nonfinite, key=lambda label: not label.startswith("model"))
    for label in labels:
        values = nonfinite[label]
        if isinstance(values, jax.core.Tracer):
            return
        values = np.asarray(values)
        bad = values[~np.isfinite(values)]
        if bad.size:
            raise log_density_error(label, -np.inf if np.any(bad == -np.inf) else float(bad[0]))


def _check_guide_covers_model(model_trace: dict, guide_trace: dict) -> None:
    for name, site in model_trace.items():
        if site["type"] == "sample" and not site["is_observed"] and name not in guide_trace:
            kind = "discrete" if not site["fn"].has_rsample else "continuous"
            raise ValueError(
                f"model site '{name}' is a {kind} latent variable that the guide does not sample; "
                "it would be drawn from the prior and bias the objective. Add a sample site "
                f"named '{name}' to the guide (or observe it in the model)."
            )


def _add_log_probs(tr: dict) -> None:
    for site in tr.values():
        if site["type"] != "sample" or "log_prob" in site:
            continue
        if site["intermediates"]:
            lp = site["fn"].log_prob(site["value"], site["intermediates"])
        else:
            lp = site["fn"].log_prob(site["value"])
        if site["scale"] is not None:
            lp = site["scale"] * lp
        site["log_prob"] = lp


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
    _check_guide_covers_model(model_trace, guide_trace)
    check_model_guide_match(model_trace, guide_trace)
    check_plate_dims("guide", guide_trace)
    check_plate_dims("model", model_trace)
    _add_log_probs(guide_trace)
    _add_log_probs(model_trace)
    return ParticleTraces(model_trace, guide_trace, handler)
