r"""Docstring pieces of the loss classes, written once for both adapters.

The losses' docstrings name these pieces with ``{NAME}`` lines (:func:`ppl_arms._docs.fill_doc`);
the functions take what differs between the hosts (the cross-reference targets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ppl_arms._docs import fill_doc

_T = TypeVar("_T")

__all__ = [
    "ARMS_REFERENCES",
    "IWAE_ARGS",
    "IWAE_REFERENCES",
    "IWAE_SUMMARY",
    "elbo_args",
    "elbo_doc",
    "elbo_summary",
    "graph_doc",
    "iwae_doc",
]


def elbo_summary(trace_elbo: str) -> str:
    """What ``TraceARMS_ELBO`` computes (``trace_elbo``: the host's ``Trace_ELBO`` reference)."""
    return rf"""
    Each discrete guide site draws its ``num_particles`` values jointly through a copula
    (independently per element), and its learning signal is, per plate element, the ELBO terms of
    that element plus every term outside the site's plates (as {trace_elbo} would use). The loss
    value is the negated plain Monte Carlo ELBO over the particles; its gradient is the estimator
    at discrete sites, the pathwise gradient at reparameterised sites, and the usual gradient for
    model parameters. Scores are unscaled and unmasked; subsampling scales and masks enter only
    the learning signals, so expected gradients equal the full-data gradient.

    .. math::
        \hat g_\phi=\sum_{{\text{{sites}}}}\sum_{{i=1}}^n c_i\,\nabla_\phi\log q_\phi(z_i),\qquad
        c_i=\text{{debias}}(p)\,\frac{{f_i-\bar f}}{{n-1}}\ \text{{(ARMS)}}.
    """


def elbo_args(config_estimator: str) -> str:
    """The estimator arguments of the ELBO losses (``config_estimator``: the adapter's function)."""
    return f"""
    num_particles: Number of coupled particles ``n >= 2``.
    estimator: Default estimator of discrete sites: ``"arms"`` (ARMS at Bernoulli, CARMS at
        categorical sites), ``"loorf"``, ``"disarm"`` (``n/2`` antithetic pairs, Bernoulli only),
        ``"reinforce"`` (no baseline), or ``"double_cv"`` / ``"rodeo"`` (i.i.d. samples with
        control variates from the gradient of the learning signal with respect to the sample;
        LOORF where the model is not differentiable in it, with a warning; learned parameters
        named ``"_ppl_arms/<estimator>/<site>/<leaf>"``, see ``docs/estimators.md``). Override
        per site with ``infer={{"estimator": ...}}`` or :func:`~{config_estimator}`.
    copula: ``"dirichlet"`` or ``"gaussian"``.
    categorical_coupling: ``"stick_breaking_unsorted"`` (the default at every ``K``: stick
        breaking in index order with the most probable category last, :math:`O(nK+n^2)`),
        ``"stick_breaking"`` (sticks sorted by probability) or ``"inverse_cdf"`` (CARMS-I,
        :math:`O(K^3+n^2K^2)`); all exact, see :data:`ppl_arms.config.CATEGORICAL_COUPLINGS`.
    """


ARMS_REFERENCES = """
A. Dimitriev, M. Zhou. "ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary
Variables." ICML 2021. A. Dimitriev, M. Zhou. "CARMS: Categorical-Antithetic-REINFORCE
Multi-Sample Gradient Estimator." NeurIPS 2021.
"""
"""The ELBO losses' references."""


IWAE_SUMMARY = r"""
Two particle sets are drawn for the local estimators: ``n`` i.i.d. particles define the bound (and
its direct gradient :math:`\sum_i\tilde w_i\nabla_\phi\log w_i`, which is *not* zero-mean and is
kept), and, for ``"arms"``, ``"loorf"`` and ``"disarm"``, ``n`` more particles coupled per discrete
site give the score part through local signals
:math:`F_j=\sum_k\log\frac1n(\sum_{i\ne k}w_i+\tilde w_j)`, the **sum** over ``k`` of the
per-sample local problems (averaging, as the reference code does, is ``1/n`` too small and
biased). ``"vimco"`` uses only the ``n`` i.i.d. particles with VIMCO's leave-one-out signals.
``"vimco-arms"`` draws ``n`` particles, ``n - 2`` i.i.d. and an antithetic pair coupled per
discrete site, and puts each pair member in its own bound with the i.i.d. ones: a bound of
``n - 1`` samples from ``n`` evaluations, with VIMCO signals at the i.i.d. particles and
ARMS/CARMS over the pair (:mod:`ppl_arms.core.iwae_hybrid`).

At an equal number of model evaluations, ``"vimco"`` trained the best binary VAEs in
docs/benchmarks/multisample.md, ``"vimco-arms"`` came close (level on the nonlinear VAE), and the
local forms were about 3 nats behind, so ``"vimco"`` is the default. It refuses per-site
``infer={"estimator": ...}`` keys (pass ``estimator="arms"`` for those guides).

**Which bound.** By default (``bound_plates=None``) the bound is taken per element of the plates
common to every model sample site (for an amortised model: one bound per data point, summed;
subsampling those plates is allowed and rescaled). If any latent lies outside them, e.g. a global
latent, the common set is empty and the bound is over the whole trace. Pass ``bound_plates=()`` to
force the whole-trace bound or a tuple of plate names to choose.
"""
"""What ``TraceARMS_IWAE`` computes, in both adapters."""


IWAE_ARGS = """
    num_particles: ``n >= 2``, the number of samples inside the bound (``n >= 3`` and a bound
        of ``n - 1`` for ``"vimco-arms"``).
    estimator: ``"vimco"`` (the default; ``n`` model evaluations), ``"vimco-arms"`` (``n``),
        ``"arms"`` (local ARMS/CARMS; ``2n``), ``"loorf"`` (local LOORF; ``2n``) or
        ``"disarm"`` (local DisARM, ``n`` even; ``2n``); see
        :data:`ppl_arms.config.IWAE_ESTIMATORS`.
    copula: ``"dirichlet"`` or ``"gaussian"``.
    categorical_coupling: ``"stick_breaking_unsorted"`` (default), ``"stick_breaking"`` or
        ``"inverse_cdf"`` (see :data:`ppl_arms.config.CATEGORICAL_COUPLINGS`).
    bound_plates: ``None`` (automatic), ``()`` or plate names; see above.
    """
"""The estimator and bound arguments of ``TraceARMS_IWAE``, in both adapters."""

IWAE_REFERENCES = """
Y. Burda, R. Grosse, R. Salakhutdinov. "Importance Weighted Autoencoders." ICLR 2016.
A. Mnih, D. Rezende. "Variational inference for Monte Carlo objectives." ICML 2016.
A. Dimitriev, M. Zhou. "ARMS." ICML 2021 (multi-sample bound, with the sum over ``k``).
"""
"""``TraceARMS_IWAE``'s references."""


def elbo_doc(trace_elbo: str, config_estimator: str) -> Callable[[_T], _T]:
    """Fill an ELBO loss's ``{SUMMARY}``, ``{ARGS}`` and ``{REFERENCES}`` lines.

    Args:
        trace_elbo: Cross-reference to the host's ``Trace_ELBO``.
        config_estimator: Dotted path of the adapter's ``config_estimator``.
    """
    return fill_doc(
        SUMMARY=elbo_summary(trace_elbo),
        ARGS=elbo_args(config_estimator),
        REFERENCES=ARMS_REFERENCES,
    )


def graph_doc(provenance: str) -> Callable[[_T], _T]:
    """Fill ``TraceGraphARMS_ELBO``'s ``{SUMMARY}`` line.

    Args:
        provenance: How the host finds the terms that depend on a site (a cross-reference).
    """
    return fill_doc(
        SUMMARY=f"""
        Each discrete site's learning signal is only its *downstream* cost: the model and guide
        terms whose value depends on the site (found by {provenance}), summed to the site's
        plates. Upstream and unrelated terms, pure noise for this site, are left out.
        """
    )


def iwae_doc(obj: _T) -> _T:
    """Fill ``TraceARMS_IWAE``'s ``{SUMMARY}``, ``{ARGS}`` and ``{REFERENCES}`` lines."""
    return fill_doc(SUMMARY=IWAE_SUMMARY, ARGS=IWAE_ARGS, REFERENCES=IWAE_REFERENCES)(obj)
