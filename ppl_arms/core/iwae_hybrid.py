r"""Surrogate of the VIMCO-ARMS hybrid bound: coupled samples inside the bound, not beside it.

``TraceARMS_IWAE(estimator="vimco-arms")`` draws ``P`` particles: ``a = P - m`` i.i.d. ones and
``m`` coupled per discrete site (``m = 2`` by default). Its objective is the ``(a+1)``-sample bound,
estimated by :math:`\hat{\mathcal L}=\frac1m\sum_jL_j` over the subsets "i.i.d. samples + coupled
sample ``j``" (:func:`~ppl_arms.core.iwae.hybrid_terms`), so ``P - 1`` of the ``P`` evaluations
are inside every bound, where the local form (``"arms"``) puts ``P / 2`` there.

The gradient has three parts, each unbiased (docs/estimators.md, IWAE section):

* the direct term :math:`\sum_p\partial\hat{\mathcal L}/\partial\ell_p\,\nabla_\phi\ell_p` over all
  ``P`` particles (autodiff of :math:`\hat{\mathcal L}` for everything but the discrete sites'
  ``log q``, whose part goes through the logit carriers);
* VIMCO score terms at the i.i.d. particles, their signals averaged over the ``m`` subsets;
* ARMS/CARMS (or LOORF where the site cannot be coupled) over the ``m`` coupled particles with
  signals :math:`L_j`, the estimate of :math:`\nabla\mathbb E_q[h]` for
  :math:`h(z)=\log\frac1{a+1}(\sum_{i\le a}w_i+w(z))`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.carriers import BoundCarrier, Coupled
from ppl_arms.core.iwae import hybrid_terms
from ppl_arms.core.surrogate import finite_signals, with_gradient

__all__ = ["hybrid_surrogate"]


def hybrid_surrogate(
    log_weight: Array,
    num_coupled: int,
    bound_scale: float,
    sites: Sequence[tuple[BoundCarrier, Coupled]],
) -> Array:
    """The hybrid's ``(a+1)``-sample bound with unbiased gradients at the discrete sites.

    Args:
        log_weight: Per-element log-weights ``[P, *E]`` over the bound's plates, unscaled by the
            bound's subsampling scale; the first ``P - num_coupled`` particles are i.i.d., the
            last ``num_coupled`` are coupled. Discrete sites' ``log q`` must enter detached (their
            direct gradient is added here); everything else keeps its gradient.
        num_coupled: ``m``, the number of coupled particles.
        bound_scale: The subsampling scale of the bound's plates (``s``).
        sites: The non-reparameterised guide sites' carriers, each with what the coupling found
            common to its coupled particles.

    Returns:
        ``s * sum(mean_j L_j)`` in value, with the estimator as gradient.
    """
    ops = get_ops(log_weight)
    terms = hybrid_terms(log_weight, num_coupled)
    total_particles = ops.shape(log_weight)[0]
    a = total_particles - num_coupled
    objective = bound_scale * ops.sum(ops.mean(terms.bounds, axis=0))
    zeros = ops.zeros((num_coupled, *ops.shape(terms.iid_signals)[1:]), terms.iid_signals)
    # Per-particle score coefficients: VIMCO's at the i.i.d. particles, none at the coupled ones
    # (their score part is the site estimator's, below).
    iid_score = finite_signals(bound_scale * terms.iid_signals)
    score = ops.concatenate([iid_score, zeros], axis=0)
    coupled_signal = finite_signals(bound_scale * terms.coupled_signals)
    no_direct = ops.zeros(ops.shape(iid_score), iid_score)
    total = ops.const(0.0, objective)
    for site, coupled in sites:
        # direct term over all P particles + the i.i.d. score coefficients ("vimco" form) ...
        total = total + site.term(terms.weights, score, total_particles, True, coupled)
        # ... + the site estimator over the coupled particles a .. P - 1 ("local" form)
        total = total + site.term(no_direct, coupled_signal, a, False, coupled)
    return with_gradient(objective, total)
