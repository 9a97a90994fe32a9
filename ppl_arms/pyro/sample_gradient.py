r"""The gradient of the learning signal with respect to a discrete site's sampled value (Pyro).

:func:`sample_gradients` computes :math:`g=\partial f/\partial z` per particle, as described in
:mod:`ppl_arms._sample_gradient`, with autograd: it replays the guide and the model of a vectorised
particle run with the chosen sites' values as float leaves (every site's ``log_prob`` times
``site["scale"]`` and masked by ``site["mask"]``) and runs one backward pass.

**Categorical sites.** Torch's ``OneHotCategorical.log_prob`` takes an ``argmax`` and has no
gradient, so the own terms of a one-hot site are taken in their linear form. A site sampled from
an integer-valued ``Categorical`` has no float value to differentiate: its gradient is zeros
``[*value_shape, K]`` and it is reported as non-differentiable. Use ``OneHotCategorical`` in guide
and model. Where the program uses the value through indexing (``tensor[z.long()]``) or comparisons
(``torch.where(z == 1, a, b)``), the site is reported too and gets its own terms only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.ops.provenance import detach_provenance
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from torch.distributions import Distribution

from ppl_arms._docs import fill_doc
from ppl_arms._sample_gradient import (
    SAMPLE_GRADIENTS_DOC,
    SampleGradients,
    latent_sites,
    split_signal,
)
from ppl_arms._sample_gradient import linear_log_prob as _linear_log_prob
from ppl_arms.core.estimators import DistKind
from ppl_arms.pyro._sites import unwrap

__all__ = ["SampleGradients", "linear_log_prob", "sample_gradients"]


def linear_log_prob(fn: Distribution, value: torch.Tensor) -> torch.Tensor:
    r"""A Pyro site's log-density in a form linear in the value, with detached parameters.

    :func:`ppl_arms._sample_gradient.linear_log_prob` of the unwrapped distribution: Bernoulli
    :math:`z\,\ell`, one-hot :math:`\langle v,\log p\rangle`, through ``Independent`` (summed
    event dims), ``MaskedDistribution`` and ``ExpandedDistribution`` wrappers.

    Args:
        fn: The site's distribution (Bernoulli or OneHotCategorical, possibly wrapped).
        value: A float value of the site's shape.

    Returns:
        The linear form, of ``fn.log_prob(value)``'s shape.

    Raises:
        ValueError: For a distribution other than the wrappers over Bernoulli / OneHotCategorical.
    """
    info = unwrap(fn)
    if info.kind is DistKind.OTHER or (info.kind is DistKind.CATEGORICAL and not info.one_hot):
        raise ValueError(f"no linear log-density for a {type(fn).__name__} distribution")
    return _linear_log_prob(info, value)


def _replay_trace(guide_trace: Trace, leaves: dict[str, torch.Tensor]) -> Trace:
    """A copy of ``guide_trace`` with plain (provenance-free) values and the leaves substituted."""
    tr = guide_trace.copy()
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample":
            value = leaves[name] if name in leaves else detach_provenance(site["value"])
            tr.nodes[name] = {**site, "value": value}
    return tr


def _with_model_subsamples(guide_trace: Trace, model_trace: Trace | None) -> Trace:
    """``guide_trace`` plus the subsample sites of ``model_trace`` that it lacks."""
    if model_trace is None:
        return guide_trace
    tr = guide_trace.copy()
    for name, site in model_trace.nodes.items():
        if site_is_subsample(site) and name not in tr.nodes:
            tr.nodes[name] = site
    return tr


def _site_log_prob(site: dict, value: torch.Tensor) -> torch.Tensor:
    lp = site["fn"].log_prob(value, *site["args"], **site["kwargs"])
    return scale_and_mask(lp, site["scale"], site["mask"]).sum()


def _linear(site: dict, name: str) -> torch.Tensor:
    linear = linear_log_prob(site["fn"], site["value"])
    return scale_and_mask(linear, site["scale"], site["mask"]).sum()


def _sample_sites(tr: Trace) -> list[tuple[str, dict]]:
    return [
        (name, site)
        for name, site in tr.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    ]


def _grads(output: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    if not output.requires_grad:
        return (None,) * len(inputs)
    return torch.autograd.grad(output, inputs, retain_graph=True, allow_unused=True)


@fill_doc(FORMULA=SAMPLE_GRADIENTS_DOC)
def sample_gradients(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    guide_trace: Trace,
    sites: Iterable[str],
    model_trace: Trace | None = None,
) -> SampleGradients:
    r"""Per particle, the gradient of the learning signal with respect to the chosen sites' values.

    {FORMULA}

    The guide is replayed against ``guide_trace`` with the chosen sites' values as float leaves,
    the model against the replayed guide; one backward pass (plus a small one per site for its own
    terms) gives every site's gradient. Particles are independent under the particle plate, so the
    gradient of the sum over particles is the per-particle gradient.

    Args:
        model: The model, wrapped in the same particle plate as the run that made ``guide_trace``
            (the losses' ``_vectorized_num_particles(model)``).
        guide: The guide, wrapped the same way (without the coupling: every site is replayed).
        args: Positional arguments of model and guide.
        kwargs: Keyword arguments of model and guide.
        guide_trace: The guide trace of the vectorised particle run, **before**
            ``prune_subsample_sites`` (its subsample sites fix the plates' indices in the replay).
        sites: Names of discrete guide sites (Bernoulli, OneHotCategorical or Categorical,
            possibly under ``to_event``, ``.mask``, ``.expand``).
        model_trace: Optionally the model trace of the same run, also before pruning: the
            subsample sites of plates that only the model has are replayed from it (without it,
            such plates draw new indices, which costs variance but no bias).

    Returns:
        :class:`SampleGradients`: ``df_dz[name]`` of shape ``[P, *batch, *event]`` (Bernoulli) or
        ``[P, *batch, *event, K]`` (one-hot; zeros for integer Categorical), detached, and the
        sites whose value the rest of the program uses non-differentiably.

    Raises:
        ValueError: Naming the site, if it is not a latent sample site of ``guide_trace`` or its
            distribution is not Bernoulli / OneHotCategorical / Categorical.
    """
    route = "OneHotCategorical; Categorical gives zeros"
    infos = latent_sites(sites, guide_trace.nodes, unwrap, route)
    sites = list(infos)
    integer = {n for n, i in infos.items() if i.kind is DistKind.CATEGORICAL and not i.one_hot}
    leaves = {}
    for name in sites:
        if name not in integer:
            value = detach_provenance(guide_trace.nodes[name]["value"]).detach()
            leaves[name] = value.clone().requires_grad_(True)
    df_dz: dict[str, torch.Tensor] = {}
    nondifferentiable = set()
    if leaves:
        with torch.enable_grad():
            replay = _replay_trace(guide_trace, leaves)
            new_guide = poutine.trace(poutine.replay(guide, trace=replay)).get_trace(
                *args, **kwargs
            )
            model_replay = _with_model_subsamples(new_guide, model_trace)
            new_model = poutine.trace(poutine.replay(model, trace=model_replay)).get_trace(
                *args, **kwargs
            )
            programs = ((1.0, _sample_sites(new_model)), (-1.0, _sample_sites(new_guide)))
            rest, own = split_signal(programs, leaves, _site_log_prob, _linear, torch.zeros(()))
            names = list(leaves)
            rest_grads = _grads(rest, [leaves[name] for name in names])
            for name, g_rest in zip(names, rest_grads, strict=True):
                (g_own,) = _grads(own[name], [leaves[name]])
                total = torch.zeros_like(leaves[name])
                for g in (g_rest, g_own):
                    if g is not None:
                        total = total + g.detach()
                if g_rest is None:
                    nondifferentiable.add(name)
                df_dz[name] = total.detach()
    for name in integer:
        logits = detach_provenance(infos[name].base.logits)
        value = detach_provenance(guide_trace.nodes[name]["value"])
        df_dz[name] = logits.new_zeros((*value.shape, logits.shape[-1]))
        nondifferentiable.add(name)
    return SampleGradients({name: df_dz[name] for name in sites}, frozenset(nondifferentiable))
