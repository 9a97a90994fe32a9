r"""Exchangeable copulas: n exactly-uniform, negatively dependent uniforms per element.

Every copula here turns base noise with a leading sample axis of size ``n`` into uniforms
``V[0..n-1]`` that are exactly :math:`U(0,1)` marginally, exchangeable across the sample axis, and
independent across all other axes (one copula draw per element, never shared). Each copula also gives
its exact pairwise joint CDF :math:`C_n(s,t)=P(V_i\le s, V_j\le t)` for :math:`i\ne j`, and the
*discordance* :math:`\delta_n(m)=m-C_n(m,m)`, computed without cancellation, which is all that the
ARMS debias factor needs.

* :class:`DirichletCopula` (ARMS-D, [ARMS]_ §3): :math:`E_i\sim\mathrm{Exp}(1)`,
  :math:`D=E/\sum_kE_k\sim\mathrm{Dir}(1,\dots,1)`, :math:`V_i=(1-D_i)^{n-1}`, and
  :math:`C_n(s,t)=\max(0,s^{1/(n-1)}+t^{1/(n-1)}-1)^{n-1}`.
* :class:`GaussianCopula` (ARMS-N): :math:`W\sim\mathcal N(0,\Sigma)` with unit variances and the most
  negative equicorrelation :math:`\rho=-1/(n-1)` (singular, :math:`\sum_iW_i=0`), :math:`V_i=\Phi(W_i)`,
  and :math:`C_n(s,t)=\Phi_2(\Phi^{-1}(s),\Phi^{-1}(t);\rho)` computed natively in the backend.
* :class:`IndependentCopula`: i.i.d. uniforms; :math:`C_n(s,t)=st`. With it ARMS is LOORF.

With ``n == 2`` the Dirichlet and Gaussian copulas are both the antithetic pair :math:`V_2=1-V_1`.
:func:`antithetic_pairs` builds the ``n/2`` independent antithetic pairs that DisARM uses.

References:
    .. [ARMS] A. Dimitriev and M. Zhou. "ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary
       Variables." ICML 2021. https://arxiv.org/abs/2105.14141
    .. [Genz] A. Genz. "Numerical computation of rectangular bivariate and trivariate normal and t
       probabilities." Statistics and Computing 14, 2004.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from functools import cache

import numpy as np

from ppl_arms._typing import Array, Shape
from ppl_arms.core._ops import get_ops

__all__ = [
    "NORMAL_QUANTILE_BOUND",
    "Copula",
    "DirichletCopula",
    "GaussianCopula",
    "IndependentCopula",
    "NoiseKind",
    "antithetic_pairs",
    "bivariate_normal_cdf",
]

NORMAL_QUANTILE_BOUND = 40.0
"""Normal quantiles are clipped to ``[-40, 40]`` before use: ``Φ(±40)`` is exactly 0/1 in float64 and
float32, so the clip changes no probability but keeps ``±inf`` (from ``s ∈ {0, 1}``) out of products
such as ``h * k`` that would otherwise give ``inf - inf``."""

_GL_DIAGONAL_NODES = 32
_GL_BVN_NODES = 20


class NoiseKind(enum.StrEnum):
    """The base noise a copula consumes; adapters draw it with their own RNG."""

    UNIFORM = "uniform"
    """Standard uniform on ``[0, 1)``."""
    NORMAL = "normal"
    """Standard normal."""


def _check_n(n: int) -> None:
    if n < 2:
        raise ValueError(
            f"a copula couples n >= 2 samples per element, got n={n}; use num_particles >= 2"
        )


class Copula(ABC):
    """An exchangeable n-dimensional copula with exact pairwise joint CDF.

    Subclasses are stateless; ``n`` always comes from the leading axis of the noise (or is passed).
    """

    noise: NoiseKind = NoiseKind.UNIFORM
    """Which base noise :meth:`uniforms` expects."""

    def noise_shape(self, n: int, shape: Shape) -> Shape:
        """Shape of the base noise for ``n`` samples of elements of ``shape``."""
        _check_n(n)
        return (n, *shape)

    @abstractmethod
    def uniforms(self, noise: Array) -> Array:
        """Map base noise of shape ``[n, *shape]`` to coupled uniforms of the same shape."""

    @abstractmethod
    def joint_cdf(self, s: Array, t: Array, n: int) -> Array:
        r"""Pairwise joint CDF :math:`C_n(s, t) = P(V_i \le s, V_j \le t)`, ``i != j``."""

    def pair_transform(self, s: Array, n: int) -> Array:
        r"""The per-argument part :math:`g` of :math:`C_n(s,t)=h(g(s),g(t))` (default: identity).

        Callers that evaluate :math:`C_n` at many pairs of a few points (the CARMS rectangles)
        transform each point once and combine with :meth:`pair_cdf`; the numbers equal
        :meth:`joint_cdf`'s.
        """
        return s

    def pair_cdf(self, gs: Array, gt: Array, n: int) -> Array:
        """The copula from transformed arguments: ``joint_cdf(s, t)`` equals ``h(g(s), g(t))``."""
        return self.joint_cdf(gs, gt, n)

    def discordance(self, m: Array, n: int) -> Array:
        r"""The discordance :math:`\delta_n(m) = m - C_n(m, m) = P(V_i \le m, V_j > m)`.

        Subclasses override this with a cancellation-free form where one exists.
        """
        return m - self.joint_cdf(m, m, n)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class IndependentCopula(Copula):
    """Independent uniforms: the identity map on uniform noise, :math:`C_n(s,t)=st`."""

    def uniforms(self, noise: Array) -> Array:  # noqa: D102
        _check_n(get_ops(noise).shape(noise)[0])
        return noise

    def joint_cdf(self, s: Array, t: Array, n: int) -> Array:  # noqa: D102
        _check_n(n)
        return s * t

    def discordance(self, m: Array, n: int) -> Array:  # noqa: D102
        _check_n(n)
        return m * (1 - m)


class DirichletCopula(Copula):
    r"""The Dirichlet copula of ARMS-D.

    .. math::
        E_i=-\log(1-U_i),\quad D_i=E_i/\textstyle\sum_k E_k,\quad V_i=(1-D_i)^{n-1},\qquad
        C_n(s,t)=\max\big(0,\ s^{1/(n-1)}+t^{1/(n-1)}-1\big)^{n-1}.

    :math:`V_i` is exactly uniform because :math:`D_i\sim\mathrm{Beta}(1,n-1)`. Because the
    :math:`D_i` sum to one, the :math:`V_i` repel: at most one of them lies below :math:`2^{-(n-1)}`.
    Uniform noise on ``[0, 1)`` gives finite exponentials; the single 0/0 case (all ``n`` exponentials
    exactly zero) is resolved to the symmetric point ``D_i = 1/n``.
    """

    def uniforms(self, noise: Array) -> Array:  # noqa: D102
        ops = get_ops(noise)
        n = ops.shape(noise)[0]
        _check_n(n)
        e = -ops.log1p(-noise)
        total = ops.sum(e, axis=0, keepdims=True)
        positive = total > 0
        d = ops.where(positive, e / ops.where(positive, total, 1.0), 1.0 / n)
        # an integer power (multiplications), not exp((n-1) log1p(-d)): as accurate, and it keeps
        # the per-sample cost of the copula at one transcendental (the exponential draw)
        return ops.power(1 - d, n - 1)

    def joint_cdf(self, s: Array, t: Array, n: int) -> Array:  # noqa: D102
        return self.pair_cdf(self.pair_transform(s, n), self.pair_transform(t, n), n)

    def pair_transform(self, s: Array, n: int) -> Array:
        r""":math:`s^{1/(n-1)}`."""
        _check_n(n)
        return get_ops(s).power(s, 1.0 / (n - 1))

    def pair_cdf(self, gs: Array, gt: Array, n: int) -> Array:
        r""":math:`\max(0, g_s + g_t - 1)^{n-1}`."""
        _check_n(n)
        ops = get_ops(gs, gt)
        return ops.power(ops.maximum(gs + gt - 1, 0.0), n - 1)

    def discordance(self, m: Array, n: int) -> Array:  # noqa: D102
        _check_n(n)
        ops = get_ops(m)
        inner = ops.maximum(2 * ops.power(m, 1.0 / (n - 1)) - 1, 0.0)
        return m - ops.power(inner, n - 1)


@cache
def _legendre(num: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(num)


def bivariate_normal_cdf(h: Array, k: Array, rho: float) -> Array:
    r"""Bivariate standard normal CDF :math:`\Phi_2(h, k; \rho)` for :math:`-1/2 \le \rho \le 0`.

    Uses the Drezner–Wesolowsky/Genz representation [Genz]_

    .. math::
        \Phi_2(h,k;\rho)=\Phi(h)\Phi(k)+\frac1{2\pi}\int_0^{\arcsin\rho}
        \exp\Big(-\frac{h^2+k^2-2hk\sin\theta}{2\cos^2\theta}\Big)\,d\theta

    with 20-point Gauss–Legendre quadrature, which is accurate to about ``1e-15`` (absolute) for
    :math:`|\rho|\le 0.5`, the range of the Gaussian copula's :math:`\rho=-1/(n-1)` for ``n >= 3``.
    Everything is computed in the array's backend: no SciPy, no host callback, jit-safe.

    Args:
        h: Upper limits of the first coordinate (may be ``±inf``).
        k: Upper limits of the second coordinate, broadcastable with ``h``.
        rho: The correlation, a Python float in ``[-0.5, 0]``.

    Returns:
        :math:`P(X\le h, Y\le k)` with the broadcast shape of ``h`` and ``k``.
    """
    if not -0.5 <= rho <= 0.0:
        raise ValueError(f"bivariate_normal_cdf supports rho in [-0.5, 0], got {rho}")
    ops = get_ops(h, k)
    h = ops.minimum(ops.maximum(h, -NORMAL_QUANTILE_BOUND), NORMAL_QUANTILE_BOUND)
    k = ops.minimum(ops.maximum(k, -NORMAL_QUANTILE_BOUND), NORMAL_QUANTILE_BOUND)
    x, w = _legendre(_GL_BVN_NODES)
    half = float(np.arcsin(rho)) / 2
    sin_theta = np.sin(half * (x + 1))
    cos2_theta = 1 - sin_theta**2
    h = ops.expand_dims(h, -1)
    k = ops.expand_dims(k, -1)
    sin_c = ops.const(sin_theta, h)
    cos2_c = ops.const(cos2_theta, h)
    w_c = ops.const(w * half / (2 * np.pi), h)
    integrand = ops.exp(-(h * h + k * k - 2 * h * k * sin_c) / (2 * cos2_c))
    correction = ops.sum(w_c * integrand, axis=-1)
    return ops.ndtr(h[..., 0]) * ops.ndtr(k[..., 0]) + correction


class GaussianCopula(Copula):
    r"""The Gaussian copula of ARMS-N with equicorrelation :math:`\rho=-1/(n-1)`.

    .. math::
        W=\sqrt{\tfrac{n}{n-1}}\,(Z-\bar Z),\quad Z\sim\mathcal N(0,I_n),\qquad V_i=\Phi(W_i),

    which has exactly unit variances and correlation :math:`-1/(n-1)` (the covariance is singular; no
    Cholesky factor or diagonal jitter is needed, so the marginals stay exact). The diagonal
    discordance is computed in a cancellation-free form: with :math:`h=\Phi^{-1}(m)`,

    .. math::
        m-\Phi_2(h,h;\rho)=m(1-m)+\frac{e^{-h^2}}{2\pi}\int_0^{s_{\max}}
        \frac{e^{-h^2 s}}{(1+s)\sqrt{1+2s}}\,ds,\qquad s_{\max}=\frac{|\rho|}{1-|\rho|}=\frac1{n-2},

    (from :math:`\partial_\rho\Phi_2=\varphi_2` and the substitution :math:`\sin t=-s/(1+s)`), whose two
    terms are both non-negative. 32-point Gauss–Legendre gives full float64 relative accuracy for all
    ``m`` and ``n >= 3``; ``n == 2`` is the exact antithetic pair.
    """

    noise = NoiseKind.NORMAL

    def uniforms(self, noise: Array) -> Array:  # noqa: D102
        ops = get_ops(noise)
        n = ops.shape(noise)[0]
        _check_n(n)
        w = (noise - ops.mean(noise, axis=0, keepdims=True)) * float(np.sqrt(n / (n - 1)))
        return ops.ndtr(w)

    @staticmethod
    def correlation(n: int) -> float:
        """The pairwise correlation :math:`-1/(n-1)` of the latent normals."""
        _check_n(n)
        return -1.0 / (n - 1)

    def joint_cdf(self, s: Array, t: Array, n: int) -> Array:  # noqa: D102
        return self.pair_cdf(self.pair_transform(s, n), self.pair_transform(t, n), n)

    def pair_transform(self, s: Array, n: int) -> Array:
        r""":math:`\Phi^{-1}(s)` (identity for ``n == 2``, the antithetic pair)."""
        _check_n(n)
        return s if n == 2 else get_ops(s).ndtri(s)

    def pair_cdf(self, gs: Array, gt: Array, n: int) -> Array:
        r""":math:`\Phi_2(g_s, g_t; \rho)`, or :math:`\max(0, s + t - 1)` for ``n == 2``."""
        _check_n(n)
        if n == 2:
            return get_ops(gs, gt).maximum(gs + gt - 1, 0.0)
        return bivariate_normal_cdf(gs, gt, self.correlation(n))

    def discordance(self, m: Array, n: int) -> Array:  # noqa: D102
        _check_n(n)
        if n == 2:
            return m
        ops = get_ops(m)
        h = ops.minimum(ops.maximum(ops.ndtri(m), -NORMAL_QUANTILE_BOUND), NORMAL_QUANTILE_BOUND)
        h2 = ops.expand_dims(h * h, -1)
        x, w = _legendre(_GL_DIAGONAL_NODES)
        s_max = 1.0 / (n - 2)
        s = (x + 1) / 2 * s_max
        weights = w / 2 * s_max / ((1 + s) * np.sqrt(1 + 2 * s)) / (2 * np.pi)
        tail = ops.sum(ops.const(weights, h2) * ops.exp(-h2 * ops.const(1 + s, h2)), axis=-1)
        return m * (1 - m) + tail


def antithetic_pairs(noise: Array) -> Array:
    """``n/2`` independent antithetic pairs: uniforms ``[u, 1 - u]`` along the sample axis.

    Sample ``i`` and sample ``i + n/2`` form a pair. This is the coupling of DisARM with ``n/2`` pairs;
    it is not exchangeable across pairs, so it is not a :class:`Copula`.

    Args:
        noise: Uniform noise of shape ``[n/2, *shape]``.

    Returns:
        Uniforms of shape ``[n, *shape]``.
    """
    ops = get_ops(noise)
    return ops.concatenate([noise, 1 - noise], axis=0)
