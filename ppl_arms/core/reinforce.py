r"""REINFORCE without a baseline (for comparison only).

.. math::
    \hat g=\frac1n\sum_{i=1}^n f_i\,\nabla_\phi\log q_\phi(z_i),\qquad c_i=\frac{f_i}{n}.

Unbiased with i.i.d. samples, but with the highest variance of all estimators here.

References:
    R. J. Williams. "Simple statistical gradient-following algorithms for connectionist
    reinforcement learning." Machine Learning 8, 1992.
"""

from __future__ import annotations

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import num_samples

__all__ = ["reinforce_coefficients"]


def reinforce_coefficients(f: Array) -> Array:
    """Per-sample coefficients ``f_i / n`` of plain REINFORCE.

    Args:
        f: Learning signals of shape ``[n, *shape]`` (i.i.d. samples, ``n >= 1``).

    Returns:
        Coefficients of the same shape; the estimate is ``sum_i c_i * score_i``.
    """
    n = num_samples(f, minimum=1)
    return get_ops(f).stop_gradient(f) / n
