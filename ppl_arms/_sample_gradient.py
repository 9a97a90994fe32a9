r"""The gradient of the learning signal with respect to a discrete site's sampled value.

The gradient-informed estimators (:mod:`ppl_arms.core.double_cv`, :mod:`ppl_arms.core.rodeo`)
take, per particle, :math:`g=\partial f/\partial z` at the sampled value :math:`z`, evaluated as a
float. Each adapter's ``sample_gradients`` (``sample_gradient.py``) replays its host's guide with
the chosen sites' values as float leaves, replays the model against it, and differentiates

.. math::
    f(z)=\sum_{\text{model sites }t}\mathrm{scale}_t\,\mathrm{mask}_t\log p_t
    -\sum_{\text{guide sites }t}\mathrm{scale}_t\,\mathrm{mask}_t\log q_t

(every site's ``log_prob``, masked and times its scale: exactly the terms of the losses' learning
signals), holding every other sampled value at its recorded value (:func:`split_signal`).

**Trace and TraceGraph forms give the same gradient.** A term whose value does not depend on the
site has a zero gradient with respect to it, so the downstream cost of the TraceGraph form (the
terms that depend on the site) and the full sum of the Trace form differ by terms with zero
gradient. Per plate element the same holds as long as the program respects its plates (the term
of element :math:`b'` does not use the value of element :math:`b\ne b'`; the losses' per-element
signals already rely on that): :math:`\partial f_b/\partial z_b=\partial f/\partial z_b`.

**The site's own terms.** A site's own log-densities enter through :func:`linear_log_prob`, their
linear form in the value: for a Bernoulli site, :math:`\log\mathrm{Bern}(z;\ell)=z\ell-
\mathrm{softplus}(\ell)` contributes :math:`\ell_p-\ell_q` (prior minus guide logit); for a
categorical site at a one-hot :math:`v`, :math:`\langle v,\log p\rangle` (the hosts' one-hot
``log_prob`` takes an ``argmax`` and has no gradient) contributes :math:`\log p-\log q`.

**Non-differentiable programs.** Where the program uses the value only through indexing,
comparisons or integer operations (``mu[z]``, ``where(z == 1, a, b)``) the rest of ``f`` has no
gradient path; such sites are reported in :attr:`SampleGradients.nondifferentiable` and their
gradient is the own terms only (exact for the part of ``f`` that is linear in the value; the
estimators stay unbiased for any gradient). The losses then give the estimator zeros there
(:func:`loss_gradients`, LOORF exactly) and warn once per site.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, MutableSet
from typing import Any, Generic, NamedTuple, TypeVar

from ppl_arms._records import SiteGradient, SitePlan
from ppl_arms._sites import SiteDistribution
from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.estimators import DistKind, SiteEstimator

__all__ = [
    "SAMPLE_GRADIENTS_DOC",
    "SampleGradients",
    "check_differentiable_kind",
    "latent_sites",
    "linear_log_prob",
    "loss_gradients",
    "site_gradients",
    "split_signal",
]

A = TypeVar("A")


class SampleGradients(NamedTuple, Generic[A]):
    r"""What ``sample_gradients`` returns.

    Attributes:
        df_dz: Per site, :math:`\partial f/\partial z`, detached: the value's shape
            ``[*batch, *event]`` for Bernoulli sites and ``[*batch, *event, K]`` for categorical
            sites (one-hot), with the particle axis first (Pyro; NumPyro's per-particle function
            gets it from the loss's ``vmap``).
        nondifferentiable: The sites whose value reaches ``f`` only through their own
            log-densities (or not at all): the rest of the program uses it non-differentiably, so
            Double CV / RODEO gain little there (the loss should warn once per such site).
    """

    df_dz: dict[str, A]
    nondifferentiable: frozenset[str]


SAMPLE_GRADIENTS_DOC = r"""
.. math::
    g=\frac{\partial}{\partial z}\Big(\sum_t\mathrm{scale}_t\mathrm{mask}_t\log p_t
    -\sum_t\mathrm{scale}_t\mathrm{mask}_t\log q_t\Big)\Big|_{z},

with every other sampled value held at its recorded value; this is the ``df_dz`` of the Trace
form's signals and of the TraceGraph form's downstream costs alike
(:mod:`ppl_arms._sample_gradient`).
"""
"""The formula of both adapters' ``sample_gradients`` (their ``{FORMULA}`` line)."""


def latent_sites(
    sites: Iterable[str],
    trace: Mapping[str, dict[str, Any]],
    unwrap: Callable[[Any], SiteDistribution],
    categorical: str,
) -> dict[str, SiteDistribution]:
    """The chosen sites of a guide trace, unwrapped, in order and without repeats.

    Args:
        sites: Names of discrete guide sites.
        trace: The guide trace's sites by name.
        unwrap: The adapter's ``unwrap``.
        categorical: How the host handles categorical sites (for the message).

    Raises:
        ValueError: Naming the site, if it is not a latent sample site of ``trace`` or its
            distribution is neither Bernoulli nor categorical.
    """
    infos = {}
    for name in dict.fromkeys(sites):
        site = trace.get(name)
        if site is None or site["type"] != "sample" or site["is_observed"]:
            raise ValueError(f"site '{name}' is not a latent sample site of the guide trace")
        infos[name] = unwrap(site["fn"])
        check_differentiable_kind(name, infos[name], categorical)
    return infos


def split_signal(
    programs: Iterable[tuple[float, Iterable[tuple[str, dict[str, Any]]]]],
    leaves: Mapping[str, Array],
    log_prob: Callable[[dict[str, Any], Array], Array],
    linear: Callable[[dict[str, Any], str], Array],
    zero: Array,
) -> tuple[Array, dict[str, Array]]:
    """The learning signal with the chosen sites' values held fixed, and their own terms.

    Args:
        programs: ``(sign, sites)``: ``+1`` with the replayed model's sample sites, ``-1`` with
            the replayed guide's, each as ``(name, site)``.
        leaves: The float leaves of the chosen sites, by name.
        log_prob: A site's summed, scaled and masked log-density at a value.
        linear: A chosen site's summed, scaled and masked :func:`linear_log_prob` at its leaf.
        zero: A zero scalar of the host.

    Returns:
        The rest of the signal (the chosen sites' values detached in their own log-densities, so
        their gradient is through the rest of the program only), and per chosen site its own
        terms in linear form.
    """
    rest, own = zero, dict.fromkeys(leaves, zero)
    for sign, sites in programs:
        for name, site in sites:
            value = site["value"]
            if name in leaves:
                own[name] = own[name] + sign * linear(site, name)
                value = get_ops(value).stop_gradient(value)
            rest = rest + sign * log_prob(site, value)
    return rest, own


def check_differentiable_kind(name: str, info: SiteDistribution, categorical: str) -> None:
    """Raise, naming the site, unless it is a Bernoulli or categorical site.

    Args:
        name: The site's name.
        info: Its unwrapped distribution.
        categorical: How the host handles categorical sites (for the message).
    """
    if info.kind is DistKind.OTHER:
        raise ValueError(
            f"site '{name}' has a {type(info.base).__name__} distribution: the gradient with "
            f"respect to the sample is defined for Bernoulli and categorical sites ({categorical})"
        )


def linear_log_prob(info: SiteDistribution, value: Array) -> Array:
    r"""A site's log-density in a form linear in the value, with stopped parameters.

    .. math::
        \text{Bernoulli: } \sum_{\text{event}} m\,z\,\ell,\qquad
        \text{categorical at a one-hot } v:\ \sum_{\text{event}} m\,\langle v,\log p\rangle,

    with the site's mask :math:`m` and logits :math:`\ell` broadcast to its coordinates. For a
    Bernoulli site it differs from ``log_prob(value)`` by a term that does not depend on the value,
    so its gradient with respect to the value is the log-density's (:math:`\ell`); for a
    categorical site it is the linear extension of the log-density to one-hot vectors (hosts'
    one-hot ``log_prob`` takes an ``argmax`` and has no gradient).

    Args:
        info: The site's unwrapped distribution (Bernoulli or categorical).
        value: A float value of the coordinates' shape (Bernoulli) or a one-hot float value with a
            trailing ``K`` axis (categorical).

    Returns:
        The linear form, of shape ``info.batch_shape`` (broadcast with the value's).
    """
    ops = get_ops(value)
    # ``+ zeros``: a host may keep a Python-number parameter (NumPyro's ``Bernoulli(0.5)``)
    raw = ops.zeros((), value) + info._plain(info.base.logits)
    k = ops.shape(raw)[-1:] if info.kind is DistKind.CATEGORICAL else ()
    logits = ops.stop_gradient(ops.broadcast_to(raw, info.coord_shape + tuple(k)))
    if info.kind is DistKind.CATEGORICAL:
        lp = ops.sum(value * ops.log_softmax(logits, axis=-1), axis=-1)
    else:
        lp = value * logits
    if info.mask is not None:
        lp = ops.where(info.mask, lp, 0.0)
    if info.event_ndims:
        lp = ops.sum(lp, axis=tuple(range(-info.event_ndims, 0)))
    return lp


def loss_gradients(
    gradients: SampleGradients,
    estimators: Mapping[str, str],
    warned: MutableSet[str],
    one_hot_route: str,
) -> dict[str, Array]:
    r"""The ``df_dz`` a loss feeds to its estimators: zero where the program is not differentiable.

    At a site in :attr:`SampleGradients.nondifferentiable` the rest of the program uses the value
    by indexing, comparisons or integer operations, so only the site's own log-density terms have
    a gradient; the estimator gets zeros there and is LOORF exactly. The first time a loss meets
    such a site it warns (``UserWarning`` naming the site), once per site and loss: the adapters
    call this eagerly (Pyro) or at trace time (NumPyro, so not once per compiled step).

    Args:
        gradients: The adapter's ``sample_gradients`` result.
        estimators: The estimator name of each site in ``gradients``.
        warned: The sites this loss has already warned about (updated).
        one_hot_route: How the host's categorical sites give a float value, for the message.

    Returns:
        ``df_dz`` per site.
    """
    out = {}
    for name, g in gradients.df_dz.items():
        if name in gradients.nondifferentiable:
            if name not in warned:
                warned.add(name)
                warnings.warn(
                    f"site '{name}': estimator '{estimators[name]}' uses the gradient of the "
                    "learning signal with respect to the sampled value, but the program uses this "
                    "value non-differentiably (indexing, comparisons or integer operations), so "
                    "the estimator is LOORF here. Use the value as a float (e.g. z @ w; for "
                    f"categorical sites {one_hot_route}), or set estimator='loorf' or 'arms' for "
                    "this site.",
                    UserWarning,
                    stacklevel=2,
                )
            g = get_ops(g).zeros(get_ops(g).shape(g), g)
        out[name] = g
    return out


def site_gradients(
    plans: Mapping[str, SitePlan],
    sample: Callable[[dict[str, SiteEstimator]], SampleGradients],
    warned: MutableSet[str],
    one_hot_route: str,
    learned: Callable[[str, SiteEstimator, str, Array, Array], Array],
) -> dict[str, SiteGradient]:
    r"""``df_dz`` and learned params of the sites whose estimator reads ``df_dz`` (else none).

    Args:
        plans: The coupling's site plans.
        sample: The adapter's ``sample_gradients`` for the sites of the given estimators.
        warned: The sites the loss has already warned about (see :func:`loss_gradients`).
        one_hot_route: How the host's categorical sites give a float value, for the warning.
        learned: ``learned(site, estimator, leaf, init, df_dz)``: the value of one learned
            parameter (the host's parameter named by :func:`~ppl_arms.config.learned_name`, with
            initial value ``init``, a scalar of ``df_dz``'s dtype).

    Returns:
        Per such site, its :class:`~ppl_arms._records.SiteGradient`.
    """
    estimators = {
        name: plan.estimator for name, plan in plans.items() if plan.estimator.needs_sample_gradient
    }
    if not estimators:
        return {}
    names = {name: est.name for name, est in estimators.items()}
    df_dz = loss_gradients(sample(estimators), names, warned, one_hot_route)
    out = {}
    for name, est in estimators.items():
        g = df_dz[name]
        init = est.learned_init(get_ops(g).zeros((), g))
        values = {leaf: learned(name, est, leaf, value, g) for leaf, value in init.items()}
        out[name] = SiteGradient(g, values)
    return out
