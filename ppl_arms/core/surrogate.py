r"""Surrogate assembly: the value is the Monte Carlo objective, the gradient is the estimator.

.. math::
    S=\hat F+\big(T-\mathrm{sg}(T)\big)\quad\Rightarrow\quad S=\hat F,\qquad\nabla S=\nabla\hat F+\nabla T,

where :math:`T` is a *gradient carrier*: for Bernoulli/categorical sites
:math:`T=\sum\mathrm{sg}(d)\cdot\phi` with per-sample directions ``d`` (so :math:`\nabla_\phi T` is the
estimate itself, no ``log_prob`` is differentiated), and for other sites
:math:`T=\sum\mathrm{sg}(c)\log q(z)`.

**Edge cases.** Only the carrier's gradient matters (its value cancels), so a product
:math:`d\cdot\phi` with :math:`d=0` counts as zero even where :math:`\phi=-\infty` (a masked
category: zero probability, never sampled, zero direction). This is the limit
:math:`p_k\phi_k\to0` as :math:`p_k\to0`, and the gradient :math:`d` is unchanged. Learning signals
that are not finite (a particle in a state of log-density :math:`-\infty`) have no defined estimate:
every estimator gives zero coefficients at such elements (:func:`finite_signals`), so that the
parameters stay finite while the loss value reports the infinity.
"""

from __future__ import annotations

import numpy as np

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import nonfinite_elements
from ppl_arms.core.carms import CHUNK_ENTRIES
from ppl_arms.core.categorical import categorical_score
from ppl_arms.core.estimators import DistKind, SiteEstimator, directions
from ppl_arms.core.loorf import loorf_coefficients

__all__ = [
    "carrier",
    "finite_signals",
    "logit_score",
    "score_carrier",
    "site_carrier",
    "site_coefficients",
    "summed_directions",
    "with_gradient",
]


def with_gradient(value: Array, carrier_term: Array) -> Array:
    """``value + (carrier - stop_gradient(carrier))``: same value, extra gradient."""
    ops = get_ops(value, carrier_term)
    return value + (carrier_term - ops.stop_gradient(carrier_term))


def _product(d: Array, x: Array) -> Array:
    """``d * x`` with ``0 * x = 0`` wherever ``d == 0``, also for an infinite ``x``.

    Used for ``stop_gradient(d) * logits`` products whose value is never used (only their gradient
    ``d``): a masked category has logit ``-inf`` and direction (or probability) exactly zero.
    """
    ops = get_ops(d, x)
    return ops.where(d == 0, 0.0, d * x)


def carrier(directions: Array, logits: Array) -> Array:
    """``sum(stop_gradient(directions) * logits)``: its gradient w.r.t. the logits is the estimate.

    Zero directions contribute zero, also at ``-inf`` logits (masked categories), so the carrier
    is finite whenever the directions are.

    Args:
        directions: Per-sample contributions from the ``*_directions`` helpers, broadcastable with
            ``logits``.
        logits: The differentiable logits of the site (any parameterisation upstream).

    Returns:
        A scalar.
    """
    ops = get_ops(directions, logits)
    return ops.sum(_product(ops.stop_gradient(directions), logits))


def finite_signals(f: Array) -> Array:
    r"""The learning signals, with every element that has a non-finite signal set to zero.

    A particle whose state has log-density :math:`-\infty` (a hard constraint, ``factor(...,
    -inf)``) has signal :math:`-\infty`, and the estimate of the gradient of an infinite objective
    is undefined (:math:`\infty-\infty` in every leave-one-out difference). All estimators here
    are linear in the signals and give zero coefficients for zero signals, so zeroing the signals
    of *all* samples of such an element removes its score contribution and nothing else: the other
    elements keep their estimates. The adapters raise instead when they can (eager calls), and the
    loss value still reports the infinite objective.

    The elements are found by :func:`~ppl_arms.core._validate.nonfinite_elements` (one reduction
    over the samples).

    Args:
        f: Learning signals ``[n, ...]`` (detached).

    Returns:
        ``f`` where every sample of the element is finite, else ``0``; same shape.
    """
    ops = get_ops(f)
    f = ops.stop_gradient(f)
    return ops.where(nonfinite_elements(f), 0.0, f)


def logit_score(kind: DistKind, z: Array, logits: Array) -> Array:
    r"""Per-coordinate surrogate ``s`` with :math:`\nabla s=\nabla\log q(z)` through the logits.

    Bernoulli: :math:`s=(z-\mathrm{sg}(p))\,\phi`; categorical:
    :math:`s=\phi_z-\sum_k\mathrm{sg}(p_k)\phi_k` (:func:`~ppl_arms.core.categorical.categorical_score`).
    ``score_carrier(c, s)`` then has the gradient of ``carrier(directions(kind, c, z, logits),
    logits)``, with ``[n, *coords]`` arrays only (no ``K`` axis per sample).

    Args:
        kind: Bernoulli or categorical.
        z: Samples ``[n, *coords]``.
        logits: Logits ``[n, *coords(, K)]`` or without the sample axis.

    Returns:
        Shape ``[n, *coords]``.
    """
    ops = get_ops(z, logits)
    if kind is DistKind.CATEGORICAL:
        return categorical_score(z, logits)
    p = ops.sigmoid(ops.stop_gradient(logits))
    return _product(ops.astype(z, p) - p, logits)


def score_carrier(coefficients: Array, log_prob: Array) -> Array:
    """``sum(stop_gradient(c) * log_prob)`` for sites without a logit parameterisation."""
    ops = get_ops(coefficients, log_prob)
    return ops.sum(ops.stop_gradient(coefficients) * log_prob)


def site_coefficients(
    estimator: SiteEstimator,
    kind: DistKind,
    f: Array,
    z: Array,
    lead: Array | None,
    shared: Array | None = None,
) -> Array:
    """Per-sample coefficients of one site, with LOORF where the coupled draw was not used.

    Args:
        estimator: The site's estimator.
        kind: Distribution kind of the site.
        f: Learning signals ``[n, ...]`` broadcastable to the site's coordinates (detached).
        z: Sample values ``[n, *coords]``.
        lead: The coupled samples' common logits ``[*coords(, K)]`` (detached; ``None`` for
            estimators that ignore them and for other kinds).
        shared: Boolean ``[*coords]``: whether the coupled draw was used (``None``: all).

    Returns:
        Coefficients ``[n, *coords]`` (``[n, *batch]`` for other kinds); zero at elements whose
        signals are not finite (:func:`finite_signals`).
    """
    ops = get_ops(f, z)
    f = finite_signals(f)
    if kind is DistKind.OTHER:
        return estimator.coefficients(f, z, None)
    coefficients = estimator.coefficients(f, z, None if lead is None else ops.stop_gradient(lead))
    if estimator.coupled and shared is not None:
        coefficients = ops.where(shared, coefficients, loorf_coefficients(f))
    return coefficients


def summed_directions(kind: DistKind, coefficients: Array, z: Array, logits: Array) -> Array:
    r"""The per-sample directions summed over samples, :math:`\sum_i c_i(e_{z_i}-p)`, for shared logits.

    Equal to ``sum(directions(kind, coefficients, z, logits), axis=0)`` when the logits have no
    sample axis, without the ``[n, *coords, K]`` array of the categorical case: the one-hot part is
    accumulated one sample at a time, over chunks of elements
    (:meth:`~ppl_arms.core._ops.Ops.map_chunks`), so the ``K``-sized temporaries stay bounded.

    Args:
        kind: Bernoulli or categorical.
        coefficients: ``[n, *coords]``.
        z: Samples ``[n, *coords]``.
        logits: Logits ``[*coords(, K)]`` shared by all samples.

    Returns:
        ``[*coords]`` (Bernoulli) or ``[*coords, K]`` (categorical), gradient-free.
    """
    ops = get_ops(coefficients, logits)
    c = ops.stop_gradient(coefficients)
    lg = ops.stop_gradient(logits)
    if kind is not DistKind.CATEGORICAL:
        p = ops.sigmoid(lg)
        return ops.sum(c * (ops.astype(z, p) - p), axis=0)
    k = ops.shape(lg)[-1]
    n = ops.shape(c)[0]
    shape = ops.shape(lg)[:-1]
    size = int(np.prod(shape, dtype=np.int64))
    flat_c = ops.moveaxis(ops.reshape(ops.broadcast_to(c, (n, *shape)), (n, size)), 0, 1)
    flat_z = ops.moveaxis(ops.reshape(ops.broadcast_to(z, (n, *shape)), (n, size)), 0, 1)
    flat_lg = ops.reshape(lg, (size, k))

    def chunk(cc: Array, zc: Array, lc: Array) -> Array:  # [m, n], [m, n], [m, K] -> [m, K]
        categories = ops.arange(k, lc)
        total = -ops.expand_dims(ops.sum(cc, axis=1), -1) * ops.exp(ops.log_softmax(lc, axis=-1))
        for i in range(n):
            hit = ops.expand_dims(ops.to_int(zc[:, i]), -1) == categories
            total = total + ops.where(hit, ops.expand_dims(cc[:, i], -1), 0.0)
        return total

    out = ops.map_chunks(chunk, (flat_c, flat_z, flat_lg), max(1, CHUNK_ENTRIES // k))
    return ops.reshape(out, (*shape, k))


def site_carrier(
    estimator: SiteEstimator,
    kind: DistKind,
    f: Array,
    z: Array,
    params: Array,
    shared: Array | None = None,
) -> Array:
    r"""The gradient carrier of one discrete site from its per-particle learning signals.

    Computes the estimator's per-sample coefficients from the signals ``f`` (with the shared
    parameters of particle 0), replaces them by LOORF coefficients at elements whose parameters
    differ across particles (``shared == False``, where the adapter drew i.i.d. samples), and
    returns the carrier whose gradient is :math:`\sum_i c_i\nabla\log q(z_i)`.

    Args:
        estimator: The site's estimator.
        kind: Distribution kind of the site.
        f: Learning signals ``[n, ...]`` broadcastable to the site's coordinates (detached).
        z: Sample values ``[n, *coords]``.
        params: Per-particle logits ``[n, *coords(, K)]`` for Bernoulli/categorical sites
            (differentiable), or per-particle unmasked, unscaled ``log_prob`` ``[n, *batch]`` for
            other sites.
        shared: Boolean ``[*coords]``: whether the coupled draw was used (``None``: all).

    Returns:
        A scalar carrier (value zero after ``with_gradient``).
    """
    if kind is DistKind.OTHER:
        return score_carrier(site_coefficients(estimator, kind, f, z, None), params)
    ops = get_ops(f, params)
    coefficients = site_coefficients(estimator, kind, f, z, ops.stop_gradient(params[0]), shared)
    return carrier(directions(kind, coefficients, z, params), params)
