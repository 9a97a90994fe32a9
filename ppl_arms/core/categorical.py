r"""Categorical helpers shared by CARMS and its couplings: pairwise coefficients and the gradient.

Every categorical estimator here is an importance-weighted pairwise LOORF

.. math::
    \hat g=\sum_{i=1}^n A_i\,(e_{z_i}-p),\qquad
    A_i=\frac{1}{n(n-1)}\sum_{j\ne i} r(z_i,z_j)\,(f_i-f_j),

with pair weights :math:`r(a,b)=p_ap_b/P(z_i=a,z_j=b)` for :math:`a\ne b`. Same-category pairs cancel
between :math:`A_i` and :math:`A_j`, so their weight is irrelevant; it is set to one, which makes
:math:`A_i` equal the LOORF coefficient :math:`(f_i-\bar f)/(n-1)` when every weight is one.
"""

from __future__ import annotations

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import num_samples

__all__ = ["categorical_directions", "categorical_gradient", "pairwise_coefficients"]


def pairwise_coefficients(f: Array, weights: Array) -> Array:
    """Per-sample coefficients ``A_i = sum_{j != i} r_ij (f_i - f_j) / (n (n - 1))``.

    Args:
        f: Learning signals of shape ``[n, *fshape]``.
        weights: Pair weights ``r_ij`` of shape ``[n, n, *shape]``, symmetric, broadcastable with
            ``fshape`` on the trailing axes; the diagonal is ignored.

    Returns:
        Coefficients of shape ``[n, *broadcast(fshape, shape)]``.
    """
    n = num_samples(f)
    ops = get_ops(f, weights)
    if ops.shape(weights)[:2] != (n, n):
        raise ValueError(
            f"pair weights must have shape [n, n, ...] with n={n}, got {ops.shape(weights)}"
        )
    f = ops.stop_gradient(f)
    weights = ops.stop_gradient(weights)
    diff = ops.expand_dims(f, 1) - ops.expand_dims(f, 0)  # [i, j] = f_i - f_j (diagonal is 0)
    return ops.sum(weights * diff, axis=1) / (n * (n - 1))


def categorical_directions(coefficients: Array, z: Array, logits: Array) -> Array:
    r"""Per-sample gradient contributions :math:`A_i (e_{z_i} - p_i)` (gradient-free).

    Args:
        coefficients: ``A`` of shape ``[n, *shape]``.
        z: Integer categories of shape ``[n, *shape]``.
        logits: Logits of shape ``[*shape, K]`` or ``[n, *shape, K]``.

    Returns:
        Contributions of shape ``[n, *shape, K]``.
    """
    ops = get_ops(coefficients, logits)
    k = ops.shape(logits)[-1]
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    onehot = ops.one_hot(z, k, logits)
    return ops.expand_dims(ops.stop_gradient(coefficients), -1) * (onehot - p)


def categorical_gradient(coefficients: Array, z: Array, logits: Array) -> Array:
    r"""Assemble :math:`\hat g=\sum_i A_i (e_{z_i} - p)` over the leading sample axis.

    Returns:
        The gradient estimate with respect to the logits, shape ``[*shape, K]``.
    """
    ops = get_ops(coefficients, logits)
    return ops.sum(categorical_directions(coefficients, z, logits), axis=0)
