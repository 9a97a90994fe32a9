r"""Shared pieces of the gradient-informed estimators (Double CV, RODEO).

Leave-one-out averages, element sums of first-order Taylor terms, input clean-up and the variance
surrogate that trains control-variate parameters.

Both estimators take, besides the learning signals :math:`f_i=f(z_i)`, the gradient
:math:`g_i=\nabla_z f(z_i)` of the learning signal with respect to the (float) sample, per particle,
and build control variates from the *other* particles' values and gradients (leave-one-out), so
that every control variate of particle :math:`k` is a fixed function of :math:`z_k` given the other
particles. Its expectation is then known exactly and the estimators are unbiased for **any**
``df_dz`` (a wrong or zero gradient only costs variance).

**Elements.** A learning signal ``f`` of shape ``[n, *fshape]`` broadcasts against the samples
``[n, *coords]`` (same number of axes; the adapters append the event dims, so ``f`` has size one
there). The *element* of a signal entry is the set of coordinates it broadcasts over: the axes where
``f`` has size one and ``z`` does not. The first-order Taylor terms sum over the element:

.. math::
    \langle g, z\rangle_{\rm elem}=\sum_{e\in\text{element}} g_e z_e .

**Non-finite inputs.** As in :func:`~ppl_arms.core.surrogate.finite_signals`, an element whose
signal is not finite for some particle gets zero signals *and* zero gradients for all particles;
non-finite gradient entries are set to zero (each particle's gradient is still a function of its
own sample, so the estimators stay unbiased).
"""

from __future__ import annotations

from ppl_arms._typing import Array, Shape
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import nonfinite_elements, num_samples

__all__ = [
    "element_axes",
    "element_sum",
    "finite_inputs",
    "leave_one_out_mean",
    "variance_surrogate",
]


def element_axes(f_shape: Shape, z_shape: Shape) -> tuple[int, ...]:
    """The axes of the coordinates that one signal entry broadcasts over (see the module docstring).

    Args:
        f_shape: Shape of the learning signals ``[n, *fshape]``.
        z_shape: Shape of the samples ``[n, *coords]``.

    Returns:
        The axes ``a >= 1`` with ``f_shape[a] == 1 != z_shape[a]``.

    Raises:
        ValueError: If the shapes do not have the same number of axes or ``f`` does not broadcast
            to ``z`` (an axis where ``f`` is larger than one and differs from ``z``).
    """
    if len(f_shape) != len(z_shape):
        raise ValueError(
            f"f has shape {f_shape} and z has shape {z_shape}: give f one axis per sample axis "
            "(append size-1 axes for the event dims, as core.carriers.SiteCarrier.per_coordinate does)"
        )
    for a, (fa, za) in enumerate(zip(f_shape, z_shape, strict=True)):
        if fa not in (1, za):
            raise ValueError(
                f"f has shape {f_shape}, which does not broadcast to the samples' {z_shape} "
                f"(axis {a})"
            )
    return tuple(a for a in range(1, len(z_shape)) if f_shape[a] == 1 != z_shape[a])


def element_sum(x: Array, axes: tuple[int, ...]) -> Array:
    """Sum over the element ``axes``, keeping them (the identity when there are none)."""
    if not axes:
        return x
    return get_ops(x).sum(x, axis=axes, keepdims=True)


def leave_one_out_mean(x: Array) -> Array:
    r"""``(sum_j x_j - x_k) / (n - 1)`` for every ``k`` along the leading particle axis.

    Args:
        x: ``[n, ...]`` with ``n >= 2``.

    Returns:
        Same shape: entry ``k`` is :math:`\frac1{n-1}\sum_{j\ne k}x_j`.
    """
    n = num_samples(x, "x")
    ops = get_ops(x)
    return (ops.sum(x, axis=0, keepdims=True) - x) / (n - 1)


def finite_inputs(f: Array, df_dz: Array) -> tuple[Array, Array]:
    """Detached signals and gradients with the non-finite cases zeroed (module docstring).

    Args:
        f: Learning signals ``[n, *fshape]``.
        df_dz: Their gradients with respect to the samples ``[n, *coords]`` (or with a trailing
            category axis), broadcastable from ``f`` after the leading axes.

    Returns:
        ``(f, df_dz)``, detached.
    """
    ops = get_ops(f, df_dz)
    f = ops.stop_gradient(f)
    g = ops.stop_gradient(df_dz)
    f_shape, g_shape = ops.shape(f), ops.shape(g)
    if len(g_shape) < len(f_shape) or g_shape[0] != f_shape[0]:
        raise ValueError(
            f"df_dz has shape {g_shape}; it needs the samples' shape [n, *coords(, K)] with the "
            f"same n as f {f_shape}"
        )
    bad = nonfinite_elements(f)
    f = ops.where(bad, 0.0, f)
    bad_g = ops.reshape(bad, ops.shape(bad) + (1,) * (len(ops.shape(g)) - len(ops.shape(bad))))
    g = ops.where(bad_g | ~ops.isfinite(g), 0.0, g)
    return f, g


def variance_surrogate(directions: Array) -> Array:
    r"""The squared norm of the logit-gradient estimate: its gradient trains control-variate params.

    .. math::
        V=\Big\|\sum_i d_i\Big\|^2,\qquad
        \nabla_\theta\,\mathbb E[V]=\nabla_\theta\big(\mathrm{tr}\,\mathrm{Var}[\hat g]
        +\|\mathbb E\hat g\|^2\big)=\nabla_\theta\,\mathrm{tr}\,\mathrm{Var}[\hat g],

    because the estimators are unbiased for every value of their parameters :math:`\theta`, so
    :math:`\mathbb E\hat g` does not depend on them. This is the loss the reference code of
    RODEO (Shi et al., 2022) minimises (``variance_loss = mean(eta_grads ** 2)``), up to a
    constant factor. The directions must be computed with the parameters differentiable (the
    estimator functions keep their gradient) and everything else detached (they detach their
    other inputs).

    Args:
        directions: Per-sample directions ``[n, *coords(, K)]`` of one site with logits shared by
            the particles.

    Returns:
        A scalar.
    """
    ops = get_ops(directions)
    g = ops.sum(directions, axis=0)
    return ops.sum(g * g)
