"""Exact per-element terms of the large smoke-test model, for checks at a million elements.

Model ``z_i ~ Bernoulli(1/2)``, ``x_i ~ Normal(z_i, 1)``; guide ``z_i ~ Bernoulli(sigmoid(l_i))``.
Per element, with ``f(z) = log p(z) + log p(x_i | z) - log q(z)`` and ``q_1 = sigmoid(l_i)``:

* the ELBO term is ``q_1 f(1) + q_0 f(0)``, and one sample's variance is
  ``q_1 q_0 (f(1) - f(0))^2`` (the coupled samples of ARMS are negatively correlated, so the
  variance of their mean is at most that over ``n``);
* ``f(1) - f(0) = (x_i - 1/2) - l_i``, so the exact gradient of the negated ELBO with respect to
  ``l_i`` is ``q_1 q_0 (l_i - x_i + 1/2)``.

Elements are independent, so the ``N`` per-element gradient estimates minus these exact values are
independent with mean zero: their average (and their average weighted by any fixed weights) must
be within a few of its own standard errors of zero.
"""

import numpy as np

__all__ = ["assert_unbiased_at_scale", "exact_terms"]

HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def exact_terms(logits: np.ndarray, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Exact negated ELBO, an upper bound on one particle's variance of it, exact gradient."""
    q1 = 1.0 / (1.0 + np.exp(-logits))
    q0 = 1.0 - q1
    log_q1, log_q0 = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
    f1 = np.log(0.5) - HALF_LOG_2PI - 0.5 * (x - 1.0) ** 2 - log_q1
    f0 = np.log(0.5) - HALF_LOG_2PI - 0.5 * x**2 - log_q0
    negated_elbo = -float(np.sum(q1 * f1 + q0 * f0))
    variance = float(np.sum(q1 * q0 * (f1 - f0) ** 2))
    return negated_elbo, variance, q1 * q0 * (logits - x + 0.5)


def assert_unbiased_at_scale(
    value: float, grads: np.ndarray, logits: np.ndarray, x: np.ndarray, n: int, z: float = 5.0
) -> None:
    """The loss value and the per-element gradients agree with the exact terms within ``z`` SE."""
    exact_value, variance, exact_grad = exact_terms(logits, x)
    assert abs(value - exact_value) < z * np.sqrt(variance / n), (value, exact_value)
    errors = grads - exact_grad
    for weight in (np.ones_like(x), x - logits):  # plain, and along the learning signal
        e = weight * errors
        mean, se = e.mean(), e.std(ddof=1) / np.sqrt(e.size)
        assert abs(mean) < z * se, (mean, se)
