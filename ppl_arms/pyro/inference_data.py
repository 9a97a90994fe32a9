"""``to_inference_data``: posterior (and posterior predictive) draws of a fitted guide for ArviZ."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pyro import poutine
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample

from ppl_arms import _arviz
from ppl_arms._docs import fill_doc

__all__ = ["to_inference_data"]


def _sample_sites(tr: Trace) -> dict[str, dict[str, Any]]:
    return {
        name: site
        for name, site in tr.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    }


def _structure(model_trace: Trace) -> dict[str, _arviz.SiteInfo]:
    sites = {}
    for name, site in _sample_sites(model_trace).items():
        plates = []
        for frame in site["cond_indep_stack"]:
            if not frame.vectorized:
                continue
            full = frame.full_size or frame.size
            if full != frame.size:
                raise ValueError(
                    f"plate '{frame.name}' subsamples {frame.size} of {full} elements at site "
                    f"'{name}', so its draws would cover one minibatch only. Call "
                    "to_inference_data with the model arguments that switch subsampling off "
                    "(e.g. subsample_size=None) and the full data. An autoguide trained on "
                    "minibatches keeps its prototype's subsample size unless it was built with "
                    "create_plates=... returning the model's plates for those arguments."
                )
            plates.append(_arviz.PlateInfo(frame.name, frame.dim, full))
        shape = tuple(site["value"].shape)
        role = _arviz.SiteRole.of(site["is_observed"], bool(site["infer"].get("_deterministic")))
        sites[name] = _arviz.SiteInfo(name, shape, site["fn"].event_dim, tuple(plates), role)
    return sites


@fill_doc(GROUPS=_arviz.GROUPS_DOC)
def to_inference_data(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_samples: int = 1000,
    posterior_predictive: bool = True,
    losses: Sequence[float] | None = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> Any:
    """Posterior draws of a fitted guide (and posterior predictive draws) as ArviZ data.

    Each draw runs the guide (with the current parameter values), then the model replayed against
    it (under :func:`pyro.poutine.uncondition` for the posterior predictive), without gradients and
    with Pyro's global RNG (``pyro.set_rng_seed`` makes it reproducible). Plates must run at full
    size: a subsampled plate raises an error (pass the arguments that switch subsampling off, and
    the full data). The groups are:

    {GROUPS}

    Args:
        model: The model.
        guide: The fitted guide (an autoguide or a hand-written one).
        *args: The model's arguments (full data).
        num_samples: Number of draws.
        posterior_predictive: Also draw the observed sites.
        losses: Optional loss trace (the values returned by ``svi.step``).
        coords: Coordinates that replace the defaults of some dimensions.
        dims: Dimension names that replace the inferred ones of some sites.
        **kwargs: The model's keyword arguments.

    Returns:
        An :class:`arviz.InferenceData`.
    """
    _arviz.check_num_samples(num_samples)

    def run(predictive: bool) -> tuple[Trace, Trace]:
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        fn = poutine.replay(model, trace=guide_trace)
        if predictive:
            fn = poutine.uncondition(fn)
        return poutine.trace(fn).get_trace(*args, **kwargs), guide_trace

    with torch.no_grad():
        model_trace, guide_trace = run(False)
        sites = _structure(model_trace)
        plan = _arviz.plan_draws(sites, guide_trace.nodes, posterior_predictive)
        draws: dict[str, list[np.ndarray]] = {k: [] for k in plan.returned}
        for _ in range(num_samples):
            tr, _ = run(posterior_predictive)
            for k in plan.returned:
                draws[k].append(tr.nodes[k]["value"].detach().cpu().numpy())
    return _arviz.assemble(
        sites,
        plan,
        {k: np.stack(v) for k, v in draws.items()},
        {k: model_trace.nodes[k]["value"].detach().cpu().numpy() for k in plan.observed},
        guide,
        "pyro",
        losses,
        coords,
        dims,
    )
