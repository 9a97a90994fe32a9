r"""Double control variates: LOORF plus a first-order Taylor control variate of known mean.

Titsias and Shi (AISTATS 2022) add to the leave-one-out baseline of LOORF a second control variate
built from the gradient of the learning signal with respect to the sample. With
:math:`s_k=\nabla_\phi\log q(z_k)` (Bernoulli: :math:`z_k-p`; categorical: :math:`e_{z_k}-p`),
:math:`g_j=\nabla_z f(z_j)` and the leave-one-out average gradient
:math:`\bar g_{-k}=\frac1{n-1}\sum_{j\ne k}g_j`, the Taylor term of particle :math:`k` is

.. math::
    h_k=\big\langle\bar g_{-k},\,z_k-\mathbb E_q z\big\rangle_{\rm elem}
    =\big\langle\bar g_{-k},\,s_k\big\rangle_{\rm elem},

the first-order part of the expansion of :math:`f` around the other particles (the zeroth-order
part is LOORF's baseline). The estimator runs LOORF on the corrected signals
:math:`\tilde f_k=f_k-\alpha h_k` and adds back the exact expectation of what that removed:

.. math::
    \hat g=\frac1{n-1}\sum_{k=1}^n(\tilde f_k-\bar{\tilde f})\,s_k
    +\frac{\alpha}{n}\sum_{k=1}^n\mathrm{Cov}_q[s]\,\bar g_{-k},
    \qquad\mathrm{Cov}_q[s]\,v=\begin{cases}p(1-p)\,v & \text{Bernoulli}\\
    p\odot\big(v-\langle p,v\rangle\big) & \text{categorical}\end{cases}

(coordinate-wise: the covariance of the score of one coordinate is block diagonal across
coordinates). :math:`\mathrm{Cov}_q[s]\,\bar g` is the gradient of :math:`\langle\bar g,
\mathbb E_q z\rangle` with respect to the logits, the "global" correction term of the paper,
returned here as directions on the logits.

**Unbiasedness, for any gradient input.** :math:`z_k` is independent of :math:`\bar g_{-k}`, so
:math:`\mathbb E[h_k s_k\mid z_{-k}]=\mathrm{Cov}_q[s]\,\bar g_{-k}` exactly (the coordinates are
independent, only the coordinate's own term of :math:`h_k` correlates with its score), and for
:math:`j\ne k`, :math:`\mathbb E[h_j s_k]=0` because :math:`h_j` is linear in :math:`s_j`, which
has mean zero given everything else. Writing LOORF as
:math:`\frac1n\sum_k(\tilde f_k-\frac1{n-1}\sum_{j\ne k}\tilde f_j)s_k`, the :math:`\alpha` part
therefore has expectation :math:`-\frac\alpha n\sum_k\mathbb E[\mathrm{Cov}_q[s]\bar g_{-k}]`, which
the correction cancels, whatever ``df_dz`` and ``alpha`` are. With ``df_dz = 0`` or ``alpha = 0``
the estimator is LOORF exactly.

**When it helps.** For :math:`f` linear in :math:`z` and :math:`\alpha=1` every corrected signal
:math:`\tilde f_k=f(\mathbb E_q z)` is the same constant and the estimate is the exact gradient
(zero variance); for smooth :math:`f` the variance falls with the curvature. For a model that uses
the sample non-differentiably (indexing, comparisons) the gradient is zero and this is LOORF.

**Parameterisation.** ``alpha`` scales the Taylor control variate. :math:`\alpha=1` (the default)
is the plain first-order expansion; the reference code (``thjashin/rodeo``, ``double_cv`` in
``networks.py``) uses :math:`f_k+\alpha' h_k` with :math:`\alpha'` initialised at zero and trained
by minimising the squared estimate, i.e. :math:`\alpha'=-\alpha` here. A learned ``alpha`` is an
array input; :func:`~ppl_arms.core.taylor.variance_surrogate` of the directions is its loss.

Cost: one gradient of the learning signal with respect to the sample per particle (one backward
pass through the model, no extra model evaluation) and :math:`O(n\cdot\text{coords})` arithmetic.

The formulas were derived here and checked against the authors' reference implementation (the
``double_cv`` branch of ``DiscreteVAE.get_grad_estimation`` in ``thjashin/rodeo/networks.py``,
written for general ``K`` samples): its estimate is exactly this one with :math:`\alpha=-\alpha'`.
The paper's own equation numbers are not quoted (its full text was not available while writing).

References:
    M. K. Titsias and J. Shi. "Double Control Variates for Gradient Estimation in Discrete Latent
    Variable Models." AISTATS 2022. https://arxiv.org/abs/2111.05300
"""

from __future__ import annotations

from collections.abc import Callable

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import num_samples
from ppl_arms.core.taylor import element_axes, element_sum, finite_inputs, leave_one_out_mean

__all__ = ["categorical_double_cv_directions", "double_cv_directions"]


def _double_cv(
    f: Array,
    df_dz: Array,
    score: Array,
    cov_times: Callable[[Array], Array],
    alpha: Array | float,
) -> Array:
    """The shared formula; ``f``, ``df_dz`` and ``score`` have the same number of axes."""
    n = num_samples(f)
    ops = get_ops(f, score)
    axes = element_axes(ops.shape(f), ops.shape(score))
    f, g = finite_inputs(f, df_dz)
    g_loo = leave_one_out_mean(g)
    h = element_sum(g_loo * score, axes)
    f_tilde = f - alpha * h
    c = (f_tilde - ops.mean(f_tilde, axis=0, keepdims=True)) / (n - 1)
    return c * score + (alpha / n) * cov_times(g_loo)


def double_cv_directions(
    f: Array, z: Array, df_dz: Array, logits: Array, alpha: Array | float = 1.0
) -> Array:
    r"""Per-sample Double CV directions for a Bernoulli site; their sum is the logit gradient.

    .. math::
        d_k=\frac{\tilde f_k-\bar{\tilde f}}{n-1}\,(z_k-p)+\frac\alpha n\,p(1-p)\,\bar g_{-k},
        \qquad \tilde f_k=f_k-\alpha\big\langle\bar g_{-k},z_k-p\big\rangle_{\rm elem}

    (module docstring). ``carrier(directions, logits)``
    (:func:`~ppl_arms.core.surrogate.carrier`) is the gradient carrier, exactly like the other
    estimators' directions.

    Args:
        f: Learning signals ``[n, *fshape]``, with one axis per axis of ``z`` (size one over the
            coordinates that share a signal, e.g. the event dims).
        z: Samples in ``{0, 1}`` ``[n, *coords]`` (float).
        df_dz: :math:`\partial f(z_i)/\partial z_i` per particle, ``[n, *coords]``: the gradient of
            the same learning signal with respect to the sample evaluated as a float. Any values
            give an unbiased estimate (zeros give LOORF).
        logits: Logits ``[*coords]`` or ``[n, *coords]``.
        alpha: Scale of the Taylor control variate: a float or a differentiable scalar array
            (default 1, the plain expansion).

    Returns:
        Directions ``[n, *coords]``; gradient-free except through ``alpha``.
    """
    ops = get_ops(f, z, logits)
    p = ops.sigmoid(ops.stop_gradient(logits))
    score = ops.astype(z, p) - p
    variance = p * (1 - p)
    return _double_cv(f, df_dz, score, lambda v: variance * v, alpha)


def categorical_double_cv_directions(
    f: Array, z: Array, df_dz: Array, logits: Array, alpha: Array | float = 1.0
) -> Array:
    r"""Per-sample Double CV directions for a categorical site whose model consumes one-hot values.

    .. math::
        d_k=\frac{\tilde f_k-\bar{\tilde f}}{n-1}\,(e_{z_k}-p)
        +\frac\alpha n\,p\odot\big(\bar g_{-k}-\langle p,\bar g_{-k}\rangle\big),\qquad
        \tilde f_k=f_k-\alpha\big\langle\bar g_{-k},e_{z_k}-p\big\rangle_{\rm elem,K}

    (module docstring). The gradient is with respect to the one-hot value, so a model that
    indexes with an integer category gives none (zeros: LOORF).

    Args:
        f: Learning signals ``[n, *fshape]`` with one axis per axis of ``z``.
        z: Integer categories ``[n, *coords]``.
        df_dz: :math:`\partial f/\partial e_{z_i}` per particle, ``[n, *coords, K]``.
        logits: Logits ``[*coords, K]`` or ``[n, *coords, K]``.
        alpha: Scale of the Taylor control variate, a float or a scalar array (default 1).

    Returns:
        Directions ``[n, *coords, K]``, like
        :func:`~ppl_arms.core.categorical.categorical_directions`.
    """
    ops = get_ops(f, logits)
    lg = ops.stop_gradient(logits)
    k = ops.shape(lg)[-1]
    p = ops.exp(ops.log_softmax(lg, axis=-1))
    score = ops.one_hot(z, k, lg) - p

    def cov_times(v: Array) -> Array:
        return p * (v - ops.sum(p * v, axis=-1, keepdims=True))

    return _double_cv(ops.expand_dims(f, -1), df_dz, score, cov_times, alpha)
