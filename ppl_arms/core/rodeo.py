r"""RODEO: LOORF with control variates from discrete Stein operators (Bernoulli, one-hot sites).

Shi, Zhou, Hwang, Titsias and Mackey (NeurIPS 2022) build control variates for the leave-one-out
REINFORCE estimator from a *Stein operator* of :math:`q`: an operator :math:`\mathcal A` with
:math:`\mathbb E_q[(\mathcal A h)(z)]=0` for every function :math:`h`. For factorised Bernoulli
:math:`q` the Gibbs Stein operator of coordinate :math:`e` is

.. math::
    (\mathcal A_e h)(z)=q_e(1-z_e)\,\big(h(z^{(e)})-h(z)\big),\qquad
    z^{(e)}=z\text{ with coordinate }e\text{ flipped},

the generator of the Gibbs sampler that resamples coordinate :math:`e`; it has mean zero under
:math:`q` because that chain leaves :math:`q` invariant (explicitly: the two terms of each
:math:`z_{-e}` cancel under :math:`z_e\leftrightarrow1-z_e`). Its sum over the coordinates of an
element is the Gibbs Stein operator :math:`\mathcal A=\sum_e\mathcal A_e` of the paper.

**Surrogate from the other particles.** With :math:`g_j=\nabla_zf(z_j)` and the leave-one-out
means :math:`\bar f_{-k}`, :math:`\bar g_{-k}`, :math:`\bar z_{-k}` of the other particles'
signals, gradients and samples, particle :math:`k` uses the first-order expansion around the other
particles' centroid

.. math::
    \bar s_k(y)=\bar f_{-k}+\ell_k(y),\qquad
    \ell_k(y)=\big\langle\bar g_{-k},\,y-\bar z_{-k}\big\rangle_{\rm elem},

plus, optionally, a small learned residual network :math:`r_\theta(\ell_k(y),\bar f_{-k})` with two
outputs :math:`(r^H,r^G)` (the reference's ``SteinControlNNSingleLayer``). Because
:math:`\bar s_k` and :math:`r_\theta` depend only on the *other* particles, the Stein identity holds
conditionally on them, and every control variate below has mean zero for any ``df_dz`` and any
parameters.

**The estimator** (the structure of the reference code's ``discrete_stein_avg`` branch of
``DiscreteVAE.get_grad_estimation``, with the changes listed below):

.. math::
    \hat g=\frac1n\sum_{k=1}^n\Big[(f_k-b_k)\,s_k+\beta\,c_k\Big],\qquad
    b_k=\frac1{n-1}\sum_{j\ne k}\Big(f_j+\alpha\,(\mathcal A H_j)(z_j)\Big),

with :math:`s_k=z_k-p`, :math:`H_k=\bar s_k+r^H` and the vector control variate of coordinate
:math:`d`, the Stein operator of that coordinate applied to :math:`u_{k,d}(y)=G_k(y)(y_d-p_d)`,
:math:`G_k=\ell_k+r^G`:

.. math::
    c_{k,d}=(\mathcal A_d u_{k,d})(z_k)
    =q_d(1-z_{k,d})\Big(G_k(z_k^{(d)})\,(1-z_{k,d}-p_d)-G_k(z_k)\,(z_{k,d}-p_d)\Big)
    =-\Big(G_k(z_k)s_{k,d}-p_d(1-p_d)\,\partial_{d}G_k\Big),

where :math:`\partial_dG_k=G_k(z_{k,d}{=}1)-G_k(z_{k,d}{=}0)`. The last form shows what it does:
it replaces :math:`G_k(z_k)s_{k,d}` by its conditional expectation given the other coordinates
(a local Rao-Blackwellisation of the surrogate's share of the signal).

*Unbiasedness.* :math:`\mathbb E[b_ks_k]=0`: the :math:`f_j` are independent of :math:`z_k`, and
:math:`(\mathcal AH_j)(z_j)` has mean zero given all particles but :math:`j` (which include
:math:`z_k`). :math:`\mathbb E[c_k\mid z_{-k}]=0` by the Stein identity in :math:`z_{k,d}`.

*Defaults* :math:`\alpha=0,\ \beta=1,\ r_\theta=0`: the estimate is
:math:`\frac1n\sum_k\big[(f_k-\bar s_k(z_k))s_k+p(1-p)\,\bar g_{-k}\big]`, i.e. the signal minus the
other particles' Taylor prediction of it, plus the prediction's exact expected score term. It is
exact (zero variance) for :math:`f` linear in :math:`z`, and LOORF exactly when ``df_dz = 0``.
:math:`\alpha` adds the Stein-corrected baseline (alone, :math:`\beta=0,\alpha=1`, the baseline is
:math:`\mathbb E_qf` for linear :math:`f`), and the residual network learns what the first-order
surrogate misses; all three are trained by
:func:`~ppl_arms.core.taylor.variance_surrogate` of the directions.

**Deviations from the reference code.** (1) The vector control variate of coordinate :math:`d` uses
that coordinate's Stein operator only. The reference averages :math:`\mathcal A_e` over all
neighbours :math:`e` with one shared :math:`\beta`; the cross terms :math:`e\ne d` remove the
variation of :math:`G` a second time once the diagonal term has removed it (with :math:`G` the
linear surrogate of a linear :math:`f`, the diagonal term alone makes the estimate exact, and no
single :math:`\beta` does so with the cross terms included). (2) The surrogate enters the control
functions directly and the network is a residual initialised at zero (the reference feeds the
surrogate to the network only, with :math:`\alpha=\beta=0` at initialisation, i.e. LOORF until
trained). (3) The reference's ``avg`` surrogate averages the other particles' own expansions,
:math:`\frac1{n-1}\sum_{j\ne k}(f_j+\langle g_j,y-z_j\rangle)`; for ``n = 2`` that is the
expansion above, for ``n > 2`` it extrapolates each gradient over the full distance
:math:`y-z_j` and had a larger variance on every smooth test function tried (a binary-decoder
log-likelihood, D = 2 or 3, n = 4 and 8), up to ten times LOORF's at ``n = 8``; the averaged
gradient acts like a secant. (4) No ``1e-3`` smoothing anywhere (the reference's ``MPF`` and
``DIFF`` variants divide by ``1 - w + 1e-3``; those variants are not offered).

Categorical sites whose model consumes one-hot values use the same construction with the Gibbs
operator that resamples a coordinate among its ``K`` categories
(:func:`categorical_rodeo_directions`).

Cost: one gradient of the learning signal with respect to the sample per particle (no extra model
evaluation), :math:`O(n\cdot\text{coords})` arithmetic, and :math:`O(n\cdot\text{coords}\cdot H)`
for a residual network of width :math:`H`.

The formulas follow the authors' reference implementation (``thjashin/rodeo``, ``networks.py``);
the paper's equation numbers are not quoted (its full text was not available while writing).

References:
    J. Shi, Y. Zhou, J. Hwang, M. K. Titsias, L. Mackey. "Gradient Estimation with Discrete Stein
    Operators." NeurIPS 2022. https://arxiv.org/abs/2202.09497 (code: ``thjashin/rodeo``)
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import num_samples
from ppl_arms.core.taylor import element_axes, element_sum, finite_inputs, leave_one_out_mean

__all__ = [
    "LEAKY_SLOPE",
    "RodeoParams",
    "categorical_rodeo_directions",
    "rodeo_directions",
    "rodeo_params",
]

LEAKY_SLOPE = 0.3
"""Negative slope of the residual network's leaky ReLU (the reference's ``LeakyReLU(0.3)``)."""


class RodeoParams(NamedTuple):
    r"""The learnable parts of RODEO, as explicit arrays (the adapters register them as params).

    The residual network maps the surrogate's linear part :math:`\ell` and the leave-one-out mean
    signal :math:`\bar f_{-k}` to two outputs,
    :math:`r=W_{\rm out}^\top\,\mathrm{leaky}(w_\ell\,\ell+w_f\,\bar f_{-k}+b)+b_{\rm out}`
    (:math:`r^H` for the baseline, :math:`r^G` for the score control variate). Width ``H`` may be
    zero (no network). Every value gives an unbiased estimator.
    """

    alpha: Array
    """Scalar weight of the Stein-corrected baseline (default 0)."""
    beta: Array
    """Scalar weight of the score control variate (default 1)."""
    w_lin: Array
    """``[H]`` hidden weights of :math:`\\ell`."""
    w_base: Array
    """``[H]`` hidden weights of :math:`\\bar f_{-k}`."""
    b_hidden: Array
    """``[H]`` hidden biases."""
    w_out: Array
    """``[H, 2]`` output weights (zero at initialisation)."""
    b_out: Array
    """``[2]`` output biases (zero at initialisation)."""


def rodeo_params(like: Array, noise: Array | None = None) -> RodeoParams:
    r"""Initial parameters: :math:`\alpha=0`, :math:`\beta=1`, a residual network that outputs 0.

    Args:
        like: Any array of the backend, dtype and device wanted.
        noise: Standard normal draws ``[2, H]`` for the hidden weights (Glorot-normal scaled,
            :math:`\mathrm{std}=\sqrt{2/(1+H)}`), or ``None`` for no network (``H = 0``).

    Returns:
        A :class:`RodeoParams`; with these values :func:`rodeo_directions` is the parameter-free
        estimator of the module docstring.
    """
    ops = get_ops(like)
    hidden = 0 if noise is None else ops.shape(noise)[1]
    if noise is None:
        w_lin = w_base = ops.zeros((0,), like)
    else:
        weights = ops.astype(noise, like) * math.sqrt(2.0 / (1 + hidden))
        w_lin, w_base = weights[0], weights[1]
    return RodeoParams(
        alpha=ops.const(0.0, like),
        beta=ops.const(1.0, like),
        w_lin=w_lin,
        w_base=w_base,
        b_hidden=ops.zeros((hidden,), like),
        w_out=ops.zeros((hidden, 2), like),
        b_out=ops.zeros((2,), like),
    )


def _residual(params: RodeoParams, lin: Array, base: Array) -> tuple[Array, Array]:
    """The network's two outputs at surrogate values ``lin`` (``base`` broadcasts against it)."""
    ops = get_ops(lin, params.w_out)
    pre = (
        ops.expand_dims(lin, -1) * params.w_lin
        + ops.expand_dims(base, -1) * params.w_base
        + params.b_hidden
    )
    hidden = ops.maximum(pre, LEAKY_SLOPE * pre)
    r_h = ops.sum(hidden * params.w_out[:, 0], axis=-1) + params.b_out[0]
    r_g = ops.sum(hidden * params.w_out[:, 1], axis=-1) + params.b_out[1]
    return r_h, r_g


def _surrogate_parts(
    params: RodeoParams,
    f: Array,
    f_loo: Array,
    lin: Array,
    lin_nbr: Array,
    nbr_prob: Array,
    axes: tuple[int, ...],
) -> tuple[Array, Array, Array]:
    r"""The baseline :math:`b_k` and the surrogate :math:`G_k` at :math:`z_k` and its neighbours.

    :math:`H_k=l_k+r_h`, :math:`G_k=l_k+r_g` (linear part plus the residual network), the Gibbs
    Stein operator :math:`(\mathcal AH_k)(z_k)=\sum_e q_e\,(H_k(z^{(e)})-H_k(z_k))` with the
    neighbours' probabilities ``nbr_prob``, and :math:`b_k=\mathrm{mean}_{j\ne k}(f_j+\alpha
    (\mathcal AH_j)(z_j))`; shared by the Bernoulli and categorical forms, which differ only in
    their neighbours.
    """
    rh, rg = _residual(params, lin, f_loo)
    rh_nbr, rg_nbr = _residual(params, lin_nbr, f_loo)
    stein_h = element_sum(nbr_prob * (lin_nbr + rh_nbr - lin - rh), axes)  # (A H_k)(z_k)
    baseline = leave_one_out_mean(f + params.alpha * stein_h)
    return baseline, lin + rg, lin_nbr + rg_nbr


def rodeo_directions(
    f: Array, z: Array, df_dz: Array, logits: Array, params: RodeoParams | None = None
) -> Array:
    r"""Per-sample RODEO directions for a Bernoulli site; their sum is the logit gradient.

    .. math::
        d_k=\frac{f_k-b_k}{n}\,(z_k-p)+\frac\beta n\,c_k

    with :math:`b_k` and :math:`c_k` of the module docstring.
    ``carrier(directions, logits)`` (:func:`~ppl_arms.core.surrogate.carrier`) is the gradient
    carrier; :func:`~ppl_arms.core.taylor.variance_surrogate` of the directions trains ``params``.

    Args:
        f: Learning signals ``[n, *fshape]``, with one axis per axis of ``z`` (size one over the
            coordinates that share a signal, e.g. the event dims).
        z: Samples in ``{0, 1}`` ``[n, *coords]`` (float).
        df_dz: :math:`\partial f(z_i)/\partial z_i` per particle, ``[n, *coords]``. Any values give
            an unbiased estimate; zeros give LOORF at the default parameters.
        logits: Logits ``[*coords]`` or ``[n, *coords]``.
        params: The learnable parts (default :func:`rodeo_params` without a network). Kept
            differentiable; every other input is detached.

    Returns:
        Directions ``[n, *coords]``.
    """
    n = num_samples(f)
    ops = get_ops(f, z, logits)
    if params is None:
        params = rodeo_params(ops.stop_gradient(logits))
    p = ops.sigmoid(ops.stop_gradient(logits))
    z = ops.astype(z, p)
    axes = element_axes(ops.shape(f), ops.shape(z))
    f, g = finite_inputs(f, df_dz)
    score = z - p
    flip_prob = z * (1 - p) + (1 - z) * p  # q_e(1 - z_e): probability of the flipped value
    flip = 1 - 2 * z  # y_e - z_e at the neighbour that flips e

    g_loo = leave_one_out_mean(g)
    f_loo = leave_one_out_mean(f)
    lin = element_sum(g_loo * (z - leave_one_out_mean(z)), axes)  # l_k(z_k)
    lin_nbr = lin + g_loo * flip  # l_k at every neighbour z^(e)
    baseline, g_x, g_nbr = _surrogate_parts(params, f, f_loo, lin, lin_nbr, flip_prob, axes)
    cv = flip_prob * (g_nbr * (1 - z - p) - g_x * score)
    return ((f - baseline) * score + params.beta * cv) / n


def categorical_rodeo_directions(
    f: Array, z: Array, df_dz: Array, logits: Array, params: RodeoParams | None = None
) -> Array:
    r"""Per-sample RODEO directions for a categorical site whose model consumes one-hot values.

    The Gibbs Stein operator of coordinate :math:`e` resamples it from :math:`q_e`,
    :math:`(\mathcal A_eh)(z)=\sum_cq_e(c)\,\big(h(z^{(e\to c)})-h(z)\big)` (the :math:`c=z_e` term
    is zero), so every coordinate has ``K`` neighbours. With the one-hot values :math:`e_{z}` in
    place of :math:`z` the surrogate, baseline and residual network are those of
    :func:`rodeo_directions`, and the score control variate of coordinate :math:`d` is the
    operator of that coordinate applied to :math:`u_{k,d}(y)=G_k(y)\,(e_{y_d}-p_d)`:

    .. math::
        c_{k,d}=p_d\odot\big(G_k(z_k^{(d\to\cdot)})-\langle p_d,G_k(z_k^{(d\to\cdot)})\rangle\big)
        -G_k(z_k)\,(e_{z_{k,d}}-p_d),

    again :math:`-\big(G_k(z_k)s_{k,d}-\mathbb E_{z_d\sim q_d}[G_ks_d]\big)`, mean zero given the
    other coordinates and particles. With two categories it equals :func:`rodeo_directions` on the
    logit difference.

    Args:
        f: Learning signals ``[n, *fshape]`` with one axis per axis of ``z``.
        z: Integer categories ``[n, *coords]``.
        df_dz: :math:`\partial f/\partial e_{z_i}` per particle, ``[n, *coords, K]``.
        logits: Logits ``[*coords, K]`` or ``[n, *coords, K]``.
        params: The learnable parts (default :func:`rodeo_params` without a network).

    Returns:
        Directions ``[n, *coords, K]``, like
        :func:`~ppl_arms.core.categorical.categorical_directions`.
    """
    n = num_samples(f)
    ops = get_ops(f, logits)
    lg = ops.stop_gradient(logits)
    if params is None:
        params = rodeo_params(lg)
    k = ops.shape(lg)[-1]
    p = ops.exp(ops.log_softmax(lg, axis=-1))
    onehot = ops.one_hot(z, k, lg)
    f = ops.expand_dims(f, -1)
    axes = element_axes(ops.shape(f), ops.shape(onehot - p))
    f, g = finite_inputs(f, df_dz)
    score = onehot - p

    g_loo = leave_one_out_mean(g)
    f_loo = leave_one_out_mean(f)
    lin = element_sum(g_loo * (onehot - leave_one_out_mean(onehot)), axes)  # l_k(z_k)
    g_at_z = ops.sum(g_loo * onehot, axis=-1, keepdims=True)
    lin_nbr = lin + g_loo - g_at_z  # l_k at z_k with coordinate d set to category c
    baseline, g_x, g_nbr = _surrogate_parts(params, f, f_loo, lin, lin_nbr, p, axes)
    expected_g = ops.sum(p * g_nbr, axis=-1, keepdims=True)
    cv = p * (g_nbr - expected_g) - g_x * score
    return ((f - baseline) * score + params.beta * cv) / n
