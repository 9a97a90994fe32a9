r"""The gradient of the learning signal with respect to a discrete site's sampled value (Pyro).

The gradient-informed estimators (:mod:`ppl_arms.core.double_cv`, :mod:`ppl_arms.core.rodeo`)
take, per particle, :math:`g=\partial f/\partial z` at the sampled value :math:`z`, evaluated as a
float. :func:`sample_gradients` gets it from autograd: it replays the guide and the model of a
vectorised particle run with the chosen sites' values as float leaves and differentiates

.. math::
    f(z)=\sum_{\text{model sites }t}\mathrm{scale}_t\,\mathrm{mask}_t\log p_t
    -\sum_{\text{guide sites }t}\mathrm{scale}_t\,\mathrm{mask}_t\log q_t

(every site's ``log_prob`` times ``site["scale"]`` and masked by ``site["mask"]``, exactly the
terms of the losses' learning signals), holding all other sampled values at their recorded values.

**Trace and TraceGraph forms give the same gradient.** A term whose value does not depend on the
site has a zero gradient with respect to it, so the downstream cost of the TraceGraph form (the
terms that depend on the site) and the full sum of the Trace form differ by terms with zero
gradient. Per plate element the same holds as long as the program respects its plates (the term
of element :math:`b'` does not use the value of element :math:`b\ne b'`; the losses' per-element
signals already rely on that): :math:`\partial f_b/\partial z_b=\partial f/\partial z_b`.

**The site's own terms.** For a Bernoulli site, :math:`\log\mathrm{Bern}(z;\ell)=z\ell-
\mathrm{softplus}(\ell)` contributes :math:`\ell_p-\ell_q` (prior minus guide logit). Torch's
``OneHotCategorical.log_prob`` takes an ``argmax`` and has no gradient, so the own terms of a
one-hot site are taken in their linear form :math:`\langle v,\log p\rangle` (same value at a
one-hot :math:`v`), contributing :math:`\log p-\log q` (normalised logits).

**Non-differentiable programs.** Where the program uses the value only through indexing,
comparisons or integer operations (``tensor[z.long()]``, ``torch.where(z == 1, a, b)``) the rest of
``f`` has no gradient path; such sites are reported in
:attr:`SampleGradients.nondifferentiable` and their gradient is the own terms only (exact for the
part of ``f`` that is linear in the value; the estimators stay unbiased for any gradient). A site
sampled from an integer-valued ``Categorical`` has no float value to differentiate: its gradient is
zeros ``[*value_shape, K]`` and it is reported too. Use ``OneHotCategorical`` in guide and model.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
from pyro import poutine
from pyro.distributions import Bernoulli, Categorical, OneHotCategorical
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.distributions.util import scale_and_mask, sum_rightmost
from pyro.ops.provenance import detach_provenance
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from torch.distributions import Distribution, Independent

__all__ = ["SampleGradients", "linear_log_prob", "sample_gradients"]


class SampleGradients(NamedTuple):
    r"""What :func:`sample_gradients` returns.

    Attributes:
        df_dz: Per site, :math:`\partial f/\partial z` per particle, detached: the value's shape
            ``[P, *batch, *event]`` for Bernoulli sites, ``[P, *batch, *event, K]`` for one-hot and
            (zeros) integer categorical sites.
        nondifferentiable: The sites whose value reaches ``f`` only through their own
            log-densities (or not at all): the rest of the program uses it non-differentiably.
            The loss should warn once per such site that Double CV / RODEO gain little there.
    """

    df_dz: dict[str, torch.Tensor]
    nondifferentiable: frozenset[str]


class _Kind(enum.Enum):
    BERNOULLI = "Bernoulli"
    ONE_HOT = "OneHotCategorical"
    CATEGORICAL = "Categorical"


_WRAPPERS = (Independent, MaskedDistribution, ExpandedDistribution)
_BASES = (
    (OneHotCategorical, _Kind.ONE_HOT),
    (Bernoulli, _Kind.BERNOULLI),
    (Categorical, _Kind.CATEGORICAL),
)


def _base(fn: Distribution) -> Distribution:
    while isinstance(fn, _WRAPPERS):
        fn = fn.base_dist
    return fn


def _kind(name: str, fn: Distribution) -> _Kind:
    base = _base(fn)
    for cls, kind in _BASES:
        if isinstance(base, cls):
            return kind
    raise ValueError(
        f"site '{name}' has a {type(base).__name__} distribution: the gradient with respect to the "
        "sample is defined for Bernoulli and OneHotCategorical sites (Categorical gives zeros)"
    )


def _linear_independent(fn: Independent, value: torch.Tensor) -> torch.Tensor:
    return sum_rightmost(linear_log_prob(fn.base_dist, value), fn.reinterpreted_batch_ndims)


def _linear_masked(fn: MaskedDistribution, value: torch.Tensor) -> torch.Tensor:
    lp = linear_log_prob(fn.base_dist, value)
    mask = fn._mask
    if isinstance(mask, bool):
        return lp if mask else torch.zeros_like(lp)
    return torch.where(mask, lp, torch.zeros_like(lp))


def _linear_expanded(fn: ExpandedDistribution, value: torch.Tensor) -> torch.Tensor:
    lp = linear_log_prob(fn.base_dist, value)
    return lp.expand(torch.broadcast_shapes(tuple(fn.batch_shape), tuple(lp.shape)))


def _linear_bernoulli(fn: Bernoulli, value: torch.Tensor) -> torch.Tensor:
    return value * fn.logits.detach()


def _linear_one_hot(fn: OneHotCategorical, value: torch.Tensor) -> torch.Tensor:
    # torch normalises Categorical logits: logits = log p
    return (value * fn.logits.detach()).sum(-1)


_LINEAR: tuple[tuple[type, Callable[[Distribution, torch.Tensor], torch.Tensor]], ...] = (
    (Independent, _linear_independent),
    (MaskedDistribution, _linear_masked),
    (ExpandedDistribution, _linear_expanded),
    (Bernoulli, _linear_bernoulli),
    (OneHotCategorical, _linear_one_hot),
)


def linear_log_prob(fn: Distribution, value: torch.Tensor) -> torch.Tensor:
    r"""A log-density, linear in the value, with the exact value-gradient and detached parameters.

    .. math::
        \text{Bernoulli: } z\,\ell,\qquad\text{one-hot: } \langle v,\log p\rangle,

    through ``Independent`` (sum over the reinterpreted dims), ``MaskedDistribution`` (masked) and
    ``ExpandedDistribution`` (broadcast) wrappers. It differs from ``fn.log_prob(value)`` by a term
    that does not depend on the value, so its gradient with respect to the value is that of the
    log-density (for one-hot sites: of its linear extension, since ``log_prob`` takes an argmax).

    Args:
        fn: The site's distribution.
        value: A float value of the site's shape.

    Returns:
        The linear form, of ``fn.log_prob(value)``'s shape.

    Raises:
        ValueError: For a distribution other than the wrappers over Bernoulli / OneHotCategorical.
    """
    for cls, linear in _LINEAR:
        if isinstance(fn, cls):
            return linear(fn, value)
    raise ValueError(f"no linear log-density for a {type(fn).__name__} distribution")


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


def _costs(
    model_trace: Trace, guide_trace: Trace, leaves: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The signal with the chosen sites' own values detached, and each site's own linear terms."""
    rest = torch.zeros(())
    own = {name: torch.zeros(()) for name in leaves}
    for sign, tr in ((1.0, model_trace), (-1.0, guide_trace)):
        for name, site in tr.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            value = site["value"]
            if name in leaves:
                rest = rest + sign * _site_log_prob(site, value.detach())
                linear = scale_and_mask(
                    linear_log_prob(site["fn"], value), site["scale"], site["mask"]
                )
                own[name] = own[name] + sign * linear.sum()
            else:
                rest = rest + sign * _site_log_prob(site, value)
    return rest, own


def _grads(output: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    if not output.requires_grad:
        return (None,) * len(inputs)
    return torch.autograd.grad(output, inputs, retain_graph=True, allow_unused=True)


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

    .. math::
        g_i=\frac{\partial}{\partial z_i}\Big(\sum_t\mathrm{scale}_t\mathrm{mask}_t\log p_t
        -\sum_t\mathrm{scale}_t\mathrm{mask}_t\log q_t\Big)\Big|_{z_i},

    with every other sampled value held at its recorded value; this is the ``df_dz`` of the Trace
    form's signals and of the TraceGraph form's downstream costs alike (module docstring). The
    guide is replayed against ``guide_trace`` with the chosen sites' values as float leaves, the
    model against the replayed guide; one backward pass (plus a small one per site for its own
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
    sites = list(dict.fromkeys(sites))
    kinds = {}
    for name in sites:
        site = guide_trace.nodes.get(name)
        if site is None or site["type"] != "sample" or site["is_observed"]:
            raise ValueError(f"site '{name}' is not a latent sample site of the guide trace")
        kinds[name] = _kind(name, site["fn"])
    leaves = {}
    for name in sites:
        if kinds[name] is not _Kind.CATEGORICAL:
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
            rest, own = _costs(new_model, new_guide, leaves)
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
    for name in sites:
        if kinds[name] is _Kind.CATEGORICAL:
            site = guide_trace.nodes[name]
            logits = _base(site["fn"]).logits
            value = detach_provenance(site["value"])
            df_dz[name] = torch.zeros(
                (*value.shape, logits.shape[-1]), dtype=logits.dtype, device=logits.device
            )
            nondifferentiable.add(name)
    return SampleGradients({name: df_dz[name] for name in sites}, frozenset(nondifferentiable))
