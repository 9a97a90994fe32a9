r"""LOORF: leave-one-out REINFORCE (also called RLOO or VarGrad).

.. math::
    \hat g_{\rm LOORF}=\frac{1}{n-1}\sum_{i=1}^n (f_i-\bar f)\,\nabla_\phi\log q_\phi(z_i)
    =\frac{1}{n(n-1)}\sum_{i<j}(f_i-f_j)\big(\nabla\log q(z_i)-\nabla\log q(z_j)\big),

unbiased for i.i.d. samples :math:`z_1..z_n\sim q_\phi`, ``n >= 2``. It is ARMS with independent
uniforms (debias factor one) and CARMS with unit importance weights.

References:
    W. Kool, H. van Hoof, M. Welling. "Buy 4 REINFORCE samples, get a baseline for free!"
    ICLR Deep RL Meets Structured Prediction workshop, 2019.
"""

from __future__ import annotations

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import num_samples

__all__ = ["loorf_coefficients"]


def loorf_coefficients(f: Array, scale: Array | None = None) -> Array:
    """Per-sample coefficients ``(f_i - mean(f)) / (n - 1)``, optionally times a per-element scale.

    Args:
        f: Learning signals of shape ``[n, *shape]`` with ``n >= 2``.
        scale: A factor broadcastable to ``shape`` (ARMS's debias factor), folded into the
            division so that scaling costs no extra pass over the ``[n, *shape]`` array.

    Returns:
        Coefficients of the broadcast shape (gradient-free).
    """
    n = num_samples(f)
    ops = get_ops(f)
    f = ops.stop_gradient(f)
    centred = f - ops.mean(f, axis=0, keepdims=True)
    return centred / (n - 1) if scale is None else centred * (scale / (n - 1))
