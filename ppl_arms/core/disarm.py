r"""DisARM: the antithetic pair estimator, averaged over ``n/2`` independent pairs.

For one pair built from a shared uniform :math:`u` (samples :math:`b=\mathbb 1[u<p]` and
:math:`\tilde b=\mathbb 1[1-u<p]`),

.. math::
    \hat g_{\rm DisARM}=\tfrac12\big(f(b)-f(\tilde b)\big)\,(b-\tilde b)\,\max(p,1-p),

and ``n/2`` independent pairs are averaged. In coefficient form (sample ``i`` is paired with
``i + n/2``): :math:`c_i=\max(p,1-p)\,(f_i-f_{\mathrm{partner}(i)})/n`. With ``n == 2`` this equals ARMS
sample by sample.

References:
    Z. Dong, A. Mnih, G. Tucker. "DisARM: An Antithetic Gradient Estimator for Binary Latent
    Variables." NeurIPS 2020. https://arxiv.org/abs/2006.10680
"""

from __future__ import annotations

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import broadcast_shapes, num_samples
from ppl_arms.core.bernoulli import bernoulli_parts

__all__ = ["disarm_coefficients"]


def disarm_coefficients(f: Array, logits: Array) -> Array:
    """Per-sample DisARM coefficients for ``n/2`` antithetic pairs ``(i, i + n/2)``.

    Args:
        f: Learning signals of shape ``[n, *fshape]``, ``n`` even, samples laid out as produced by
            :func:`ppl_arms.core.copulas.antithetic_pairs`.
        logits: Logits broadcastable with ``fshape``.

    Returns:
        Coefficients of shape ``[n, *broadcast(fshape, logits.shape)]``.
    """
    n = num_samples(f)
    if n % 2:
        raise ValueError(
            f"DisARM needs an even number of samples (n/2 antithetic pairs), got n={n}; "
            "use an even num_particles or the 'arms' estimator, which takes any n >= 2"
        )
    ops = get_ops(f, logits)
    broadcast_shapes(ops.shape(f)[1:], ops.shape(logits), ("f[0]", "logits"))
    f = ops.stop_gradient(f)
    half = n // 2
    partner = ops.concatenate([f[half:], f[:half]], axis=0)
    parts = bernoulli_parts(ops.stop_gradient(logits))
    return (f - partner) * (1 - parts.minority) / n
