r"""Surrogate assembly: the value is the Monte Carlo objective, the gradient is the estimator.

.. math::
    S=\hat F+\big(T-\mathrm{sg}(T)\big)\quad\Rightarrow\quad S=\hat F,\qquad\nabla S=\nabla\hat F+\nabla T,

where :math:`T` is a *gradient carrier*: for Bernoulli/categorical sites
:math:`T=\sum\mathrm{sg}(d)\cdot\phi` with per-sample directions ``d`` (so :math:`\nabla_\phi T` is the
estimate itself, no ``log_prob`` is differentiated), and for other sites
:math:`T=\sum\mathrm{sg}(c)\log q(z)`.
"""

from __future__ import annotations

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.estimators import DistKind, SiteEstimator, directions
from ppl_arms.core.loorf import loorf_coefficients

__all__ = ["carrier", "score_carrier", "site_carrier", "with_gradient"]


def with_gradient(value: Array, carrier_term: Array) -> Array:
    """``value + (carrier - stop_gradient(carrier))``: same value, extra gradient."""
    ops = get_ops(value, carrier_term)
    return value + (carrier_term - ops.stop_gradient(carrier_term))


def carrier(directions: Array, logits: Array) -> Array:
    """``sum(stop_gradient(directions) * logits)``: its gradient w.r.t. the logits is the estimate.

    Args:
        directions: Per-sample contributions from the ``*_directions`` helpers, broadcastable with
            ``logits``.
        logits: The differentiable logits of the site (any parameterisation upstream).

    Returns:
        A scalar.
    """
    ops = get_ops(directions, logits)
    return ops.sum(ops.stop_gradient(directions) * logits)


def score_carrier(coefficients: Array, log_prob: Array) -> Array:
    """``sum(stop_gradient(c) * log_prob)`` for sites without a logit parameterisation."""
    ops = get_ops(coefficients, log_prob)
    return ops.sum(ops.stop_gradient(coefficients) * log_prob)


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
    ops = get_ops(f, params)
    if kind is DistKind.OTHER:
        return score_carrier(estimator.coefficients(f, z, None), params)
    lead = ops.stop_gradient(params[0])
    coefficients = estimator.coefficients(f, z, lead)
    if estimator.coupled and shared is not None:
        coefficients = ops.where(shared, coefficients, loorf_coefficients(f))
    return carrier(directions(kind, coefficients, z, params), params)
