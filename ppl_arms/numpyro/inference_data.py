"""``to_inference_data``: posterior (and posterior predictive) draws of a fitted guide for ArviZ."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import random
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.primitives import Messenger

from ppl_arms import _arviz
from ppl_arms._docs import fill_doc

__all__ = ["to_inference_data"]


class _FullPlates(Messenger):
    """Run every plate at its full size (no subsampling), so local sites cover all elements."""

    def process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "plate":
            size = msg["args"][0]
            msg["args"] = (size, None)
            msg["value"] = jnp.arange(size)


class _Unobserve(Messenger):
    """Sample observed sites from their distribution (posterior predictive draws)."""

    def process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and msg["is_observed"]:
            msg["value"] = None
            msg["is_observed"] = False


def _structure(model_trace: dict, plate_sizes: Mapping[str, int]) -> dict[str, _arviz.SiteInfo]:
    sites = {}
    for name, site in model_trace.items():
        if site["type"] not in ("sample", "deterministic"):
            continue
        event_dim = site["fn"].event_dim if site["type"] == "sample" else 0
        plates = tuple(
            _arviz.PlateInfo(f.name, f.dim, plate_sizes.get(f.name, f.size))
            for f in site["cond_indep_stack"]
        )
        shape = tuple(jnp.shape(site["value"]))
        deterministic = site["type"] == "deterministic"
        role = _arviz.SiteRole.of(not deterministic and site["is_observed"], deterministic)
        sites[name] = _arviz.SiteInfo(name, shape, event_dim, plates, role)
    return sites


@fill_doc(GROUPS=_arviz.GROUPS_DOC)
def to_inference_data(
    model: Callable,
    guide: Callable,
    params: Mapping[str, jax.Array],
    *args: Any,
    num_samples: int = 1000,
    rng_key: jax.Array | None = None,
    posterior_predictive: bool = True,
    losses: Sequence[float] | jax.Array | None = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> Any:
    """Posterior draws of a fitted guide (and posterior predictive draws) as ArviZ data.

    Each draw runs the guide (with ``params``), then the model replayed against it, with every plate
    at its **full size** (subsampling is switched off, so pass the full data). The groups are:

    {GROUPS}

    Args:
        model: The model.
        guide: The fitted guide (an autoguide or a hand-written one).
        params: The fitted parameters (``svi.get_params(state)`` or ``result.params``).
        *args: The model's arguments (full data).
        num_samples: Number of draws.
        rng_key: JAX key (default ``PRNGKey(0)``).
        posterior_predictive: Also draw the observed sites.
        losses: Optional loss trace (``result.losses``).
        coords: Coordinates that replace the defaults of some dimensions.
        dims: Dimension names that replace the inferred ones of some sites.
        **kwargs: The model's keyword arguments.

    Returns:
        An :class:`arviz.InferenceData`.
    """
    _arviz.check_num_samples(num_samples)
    rng_key = random.PRNGKey(0) if rng_key is None else rng_key
    model_full, guide_full = _FullPlates(model), _FullPlates(guide)

    def run(key: jax.Array, predictive: bool) -> tuple[dict, dict]:
        guide_key, model_key = random.split(key)
        guide_trace = trace(seed(substitute(guide_full, data=params), guide_key)).get_trace(
            *args, **kwargs
        )
        fn = _Unobserve(model_full) if predictive else model_full
        fn = seed(substitute(replay(fn, guide_trace), data=params), model_key)
        return trace(fn).get_trace(*args, **kwargs), guide_trace

    model_trace, guide_trace = run(rng_key, False)
    plate_sizes = {k: s["args"][0] for k, s in model_trace.items() if s["type"] == "plate"}
    sites = _structure(model_trace, plate_sizes)
    plan = _arviz.plan_draws(sites, guide_trace, posterior_predictive)

    def draw(key: jax.Array) -> dict[str, jax.Array]:
        tr, _ = run(key, posterior_predictive)
        return {k: tr[k]["value"] for k in plan.returned}

    keys = random.split(random.fold_in(rng_key, 1), num_samples)
    draws = jax.jit(jax.vmap(draw))(keys)
    observed = {k: model_trace[k]["value"] for k in plan.observed}
    return _arviz.assemble(sites, plan, draws, observed, guide, "numpyro", losses, coords, dims)
