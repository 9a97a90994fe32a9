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

__all__ = ["carrier", "score_carrier", "with_gradient"]


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
