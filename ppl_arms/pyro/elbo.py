"""``TraceARMS_ELBO`` and ``TraceGraphARMS_ELBO`` for Pyro."""

from __future__ import annotations

import contextlib
import math
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.infer.tracegraph_elbo import TrackNonReparam
from pyro.infer.util import MultiFrameTensor, is_validation_enabled, torch_backward, torch_item
from pyro.ops.provenance import detach_provenance, get_provenance
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites, site_is_subsample
from pyro.util import check_model_guide_match, check_site_shape, warn_if_nan

from ppl_arms.config import EstimatorConfig, log_density_error
from ppl_arms.core.assembly import SiteArrays, elbo_surrogate
from ppl_arms.core.estimators import DistKind
from ppl_arms.pyro._sites import SiteDistribution, broadcast_base
from ppl_arms.pyro.coupling import Coupling

__all__ = ["TraceARMS_ELBO", "TraceGraphARMS_ELBO"]


def check_guide_covers_model(model_trace: Trace, guide_trace: Trace) -> None:
    """Raise if the model has a latent sample site that the guide does not sample."""
    for name, site in model_trace.nodes.items():
        if site_is_subsample(site):
            continue  # a plate's subsample site (plates may be model-only)
        if site["type"] == "sample" and not site["is_observed"] and name not in guide_trace.nodes:
            kind = "continuous" if getattr(site["fn"], "has_rsample", False) else "discrete"
            raise ValueError(
                f"model site '{name}' is a {kind} latent variable that the guide does not sample; "
                "it would be drawn from the prior and bias the objective. Add a sample site "
                f"named '{name}' to the guide (or observe it in the model)."
            )


def _check_signal_shape(name: str, signal: torch.Tensor, info: SiteDistribution) -> None:
    """Raise if a site's learning signal has more elements than the site (not broadcast-safe)."""
    batch = info.coord_shape[: len(info.coord_shape) - info.event_ndims]
    if info.kind is DistKind.OTHER:
        batch = tuple(info.fn.batch_shape)
    if torch.broadcast_shapes(tuple(signal.shape), batch) != batch:
        raise ValueError(
            f"the learning signal of site '{name}' has shape {tuple(signal.shape)}, which does not "
            f"fit the site's batch shape {batch} (particle plate first): some log-density of the "
            "model or guide has more batch dims than its plates. Vectorised particles need "
            "broadcast-safe programs, e.g. no keepdim=True sums that turn a per-particle value "
            "of shape (n, 1) into (n, 1, 1) and then broadcast against (n, B) to (n, n, B)."
        )


def check_log_densities(model_trace: Trace, guide_trace: Trace) -> None:
    """Raise :func:`~ppl_arms.config.log_density_error` for a site with a non-finite log-density.

    One host synchronisation (the finiteness of all the sites' sums) when every value is finite.
    Skipped while :func:`torch.jit.trace` records a loss (no Python branching on values there);
    the loss then reports the infinity instead.
    """
    if torch.jit.is_tracing():
        return
    sites = [
        (f"{which} site '{name}'", site["log_prob"])
        for which, tr in (("model", model_trace), ("guide", guide_trace))
        for name, site in tr.nodes.items()
        if site["type"] == "sample"
    ]
    if not sites:
        return
    sums = torch.stack([detach_provenance(lp).detach().sum() for _, lp in sites])
    if bool(torch.isfinite(sums).all()):
        return
    for label, lp in sites:
        lp = detach_provenance(lp).detach()
        bad = lp[~torch.isfinite(lp)]
        if bad.numel():
            value = -math.inf if bool((bad == -math.inf).any()) else float(bad[0])
            raise log_density_error(label, value)


@contextlib.contextmanager
def _explain_plate_collisions(max_plate_nesting: float) -> Iterator[None]:
    try:
        yield
    except ValueError as e:
        if "num_particles_vectorized" not in str(e):
            raise
        raise ValueError(
            f"the particle plate collides with a model plate: max_plate_nesting="
            f"{max_plate_nesting} counts the particle plate, so it must be the model's plate "
            "nesting plus one (pass the model's own nesting to the loss, or leave "
            f"max_plate_nesting unset to have it guessed). Pyro said: {e}"
        ) from e


class _CoupledELBO(ELBO):
    """Shared machinery: vectorised particles, the coupled traces, and the three entry points."""

    _track_provenance = False

    def __init__(
        self,
        num_particles: int = 4,
        estimator: str = "arms",
        copula: str = "dirichlet",
        categorical_coupling: str = "stick_breaking_unsorted",
        max_plate_nesting: float = float("inf"),
        vectorize_particles: bool = True,
        retain_graph: bool | None = None,
    ) -> None:
        if vectorize_particles is not True:
            raise ValueError(
                "ppl_arms losses couple the particles of one vectorised trace and need "
                f"vectorize_particles=True, got {vectorize_particles!r}"
            )
        self.config = self._make_config(num_particles, estimator, copula, categorical_coupling)
        super().__init__(
            num_particles=self._plate_size(num_particles),
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=True,
            retain_graph=retain_graph,
        )
        self.num_particles = num_particles

    @staticmethod
    def _make_config(n: int, estimator: str, copula: str, coupling: str) -> EstimatorConfig:
        return EstimatorConfig(estimator, copula, coupling, n)

    @staticmethod
    def _plate_size(num_particles: int) -> int:
        return num_particles

    def _coupling(self) -> Coupling:
        n = self.num_particles
        return Coupling(self.config, first=0, num_coupled=n, num_particles=n)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(num_particles={self.num_particles}, estimator={c.estimator!r}, "
            f"copula={c.copula!r}, categorical_coupling={c.categorical_coupling!r})"
        )

    # -- traces ------------------------------------------------------------------------------

    def _vectorized_num_particles(self, fn: Callable) -> Callable:
        from pyro import plate

        return plate(
            "num_particles_vectorized",
            self._plate_size(self.num_particles),
            dim=-self.max_plate_nesting,
        )(fn)

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> tuple:
        model_trace, guide_trace, _ = self._coupled_traces(model, guide, args, kwargs)
        return model_trace, guide_trace

    def _coupled_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[Trace, Trace, Coupling]:
        coupling = self._coupling()
        tracker = TrackNonReparam() if self._track_provenance else contextlib.nullcontext()
        graph_type = "dense" if self._track_provenance else "flat"
        with tracker, _explain_plate_collisions(self.max_plate_nesting):
            guide_trace = poutine.trace(coupling(guide), graph_type=graph_type).get_trace(
                *args, **kwargs
            )
            model_trace = poutine.trace(
                poutine.replay(model, trace=guide_trace), graph_type=graph_type
            ).get_trace(*args, **kwargs)
        check_guide_covers_model(model_trace, guide_trace)
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        model_trace.compute_log_prob()
        guide_trace.compute_score_parts()
        check_log_densities(model_trace, guide_trace)
        if is_validation_enabled():
            for tr in (model_trace, guide_trace):
                for site in tr.nodes.values():
                    if site["type"] == "sample":
                        check_site_shape(site, self.max_plate_nesting)
        return model_trace, guide_trace, coupling

    def _traces(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> Iterator:
        if self.max_plate_nesting == float("inf"):
            # The guess runs the programs once; keep it out of the CPU random stream, so a seeded
            # first call draws what a later call would.
            with torch.random.fork_rng(devices=[]):
                self._guess_max_plate_nesting(model, guide, args, kwargs)
        yield self._coupled_traces(
            self._vectorized_num_particles(model),
            self._vectorized_num_particles(guide),
            args,
            kwargs,
        )

    # -- the surrogate -------------------------------------------------------------------------

    @abstractmethod
    def _loss(self, model_trace: Trace, guide_trace: Trace, coupling: Coupling) -> torch.Tensor:
        """The surrogate loss of one draw of coupled particle traces (value: the plain estimate)."""

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The negated ELBO estimate as a tensor whose gradient is the estimator.

        Usable directly, or through ``elbo(model, guide)`` as a :class:`torch.nn.Module`.
        """
        for model_trace, guide_trace, coupling in self._traces(model, guide, args, kwargs):
            loss = self._loss(model_trace, guide_trace, coupling)
            warn_if_nan(loss, "loss")
            return loss
        raise AssertionError("unreachable")  # pragma: no cover

    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """The negated ELBO estimate (no gradient)."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """Backpropagate the estimator into the parameters and return the loss value."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        torch_backward(loss, retain_graph=self.retain_graph)
        return torch_item(loss)


class _SignalELBO(_CoupledELBO):
    """An ELBO whose discrete sites' learning signals are chosen by the subclass (Trace or Graph)."""

    @abstractmethod
    def _signals(self, model_trace: Trace, guide_trace: Trace, coupling: Coupling) -> dict:
        """Per discrete site, the learning signal of each particle, summed to the site's plates."""

    def _loss(self, model_trace: Trace, guide_trace: Trace, coupling: Coupling) -> torch.Tensor:
        plans = coupling.plans
        n = self.num_particles
        elbo = torch.zeros(())  # stays 0 for programs without sample sites (as Trace_ELBO)
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                elbo = elbo + site["log_prob_sum"]
        for name, site in guide_trace.nodes.items():
            if site["type"] == "sample":
                lp = site["log_prob_sum"]
                elbo = elbo - (lp.detach() if name in plans else lp)
        signals = self._signals(model_trace, guide_trace, coupling)
        sites = []
        for name, plan in plans.items():
            value = detach_provenance(guide_trace.nodes[name]["value"])
            info = coupling.distributions[name]
            signal = detach_provenance(signals[name])
            _check_signal_shape(name, signal, info)
            z = info.coordinates(value)
            if plan.kind is DistKind.OTHER:
                params = detach_provenance(info.unmasked_log_prob(value))
                sites.append(SiteArrays(plan.estimator, plan.kind, 0, z, params, signal=signal))
                continue
            logits = detach_provenance(info.logits())
            base = None if name in coupling.shared else broadcast_base(logits)
            if base is not None:
                # logits broadcast along the particle plate: carrier on the un-broadcast tensor
                sites.append(
                    SiteArrays(
                        plan.estimator,
                        plan.kind,
                        plan.event_ndims,
                        z,
                        None,
                        signal=signal,
                        lead=logits[0].detach(),
                        base=base,
                    )
                )
                continue
            sites.append(
                SiteArrays(
                    plan.estimator,
                    plan.kind,
                    plan.event_ndims,
                    z,
                    logits,
                    shared=coupling.shared.get(name),
                    signal=signal,
                )
            )
        return -elbo_surrogate(detach_provenance(elbo) / n, sites)


class TraceARMS_ELBO(_SignalELBO):
    r"""ELBO with ARMS/CARMS gradients at discrete guide sites, for :class:`pyro.infer.SVI`.

    Each discrete guide site draws its ``num_particles`` values jointly through a copula
    (independently per element), and its learning signal is, per plate element, the ELBO terms of
    that element plus every term outside the site's plates (as :class:`~pyro.infer.Trace_ELBO`
    would use). The loss value is the negated plain Monte Carlo ELBO over the particles; its
    gradient is the estimator at discrete sites, the pathwise gradient at reparameterised sites,
    and the usual gradient for model parameters. Scores are unscaled and unmasked; subsampling
    scales and masks enter only the learning signals, so expected gradients equal the full-data
    gradient.

    .. math::
        \hat g_\phi=\sum_{\text{sites}}\sum_{i=1}^n c_i\,\nabla_\phi\log q_\phi(z_i),\qquad
        c_i=\text{debias}(p)\,\frac{f_i-\bar f}{n-1}\ \text{(ARMS)}.

    A site whose parameters differ across particles (they depend on upstream per-particle samples)
    keeps Pyro's i.i.d. draws there and uses LOORF, which stays unbiased. Implements ``loss``,
    ``loss_and_grads`` and ``differentiable_loss`` (so ``elbo(model, guide)`` is a
    :class:`torch.nn.Module`); particles are always vectorised.

    Args:
        num_particles: Number of coupled particles ``n >= 2``.
        estimator: Default estimator of discrete sites: ``"arms"`` (ARMS at Bernoulli, CARMS at
            categorical sites), ``"loorf"``, ``"disarm"`` (``n/2`` antithetic pairs, Bernoulli only)
            or ``"reinforce"`` (no baseline). Override per site with ``infer={"estimator": ...}`` or
            :func:`~ppl_arms.pyro.config_estimator`.
        copula: ``"dirichlet"`` or ``"gaussian"``.
        categorical_coupling: ``"stick_breaking_unsorted"`` (the default at every ``K``: stick
            breaking in index order with the most probable category last, :math:`O(nK+n^2)`),
            ``"stick_breaking"`` (sticks sorted by probability) or ``"inverse_cdf"`` (CARMS-I,
            :math:`O(K^3+n^2K^2)`); all exact, see :data:`ppl_arms.config.CATEGORICAL_COUPLINGS`.
        max_plate_nesting: The model's plate nesting (guessed with one extra run when not given).
        vectorize_particles: Must be ``True``.
        retain_graph: Passed to ``backward`` in :meth:`loss_and_grads`.

    Example::

        from pyro.infer import SVI
        from ppl_arms.pyro import TraceARMS_ELBO

        svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=TraceARMS_ELBO(num_particles=4))
        for step in range(2000):
            svi.step(data)

    References:
        A. Dimitriev, M. Zhou. "ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary
        Variables." ICML 2021. A. Dimitriev, M. Zhou. "CARMS: Categorical-Antithetic-REINFORCE
        Multi-Sample Gradient Estimator." NeurIPS 2021.
    """

    def _signals(self, model_trace: Trace, guide_trace: Trace, coupling: Coupling) -> dict:
        costs = MultiFrameTensor()
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                costs.add((site["cond_indep_stack"], site["log_prob"].detach()))
        for site in guide_trace.nodes.values():
            if site["type"] == "sample":
                costs.add((site["cond_indep_stack"], -site["log_prob"].detach()))
        return {
            name: costs.sum_to(guide_trace.nodes[name]["cond_indep_stack"])
            for name in coupling.plans
        }


class TraceGraphARMS_ELBO(_SignalELBO):
    r"""Like :class:`TraceARMS_ELBO`, with dependency-graph Rao-Blackwellised learning signals.

    Each discrete site's learning signal is only its *downstream* cost: the model and guide terms
    whose value depends on the site, found by Pyro's provenance tracking
    (:class:`~pyro.infer.tracegraph_elbo.TrackNonReparam`), summed to the site's plates. Unlike
    Pyro's :class:`~pyro.infer.TraceGraph_ELBO` it needs no baselines (the other particles are the
    baseline) and it implements ``differentiable_loss``.

    Args are those of :class:`TraceARMS_ELBO`.
    """

    _track_provenance = True

    def _signals(self, model_trace: Trace, guide_trace: Trace, coupling: Coupling) -> dict:
        downstream: dict[str, MultiFrameTensor] = defaultdict(MultiFrameTensor)
        for sign, tr in ((1.0, model_trace), (-1.0, guide_trace)):
            for site in tr.nodes.values():
                if site["type"] != "sample":
                    continue
                cost = sign * detach_provenance(site["log_prob"]).detach()
                for key in get_provenance(site["log_prob_sum"]):
                    downstream[key].add((site["cond_indep_stack"], cost))
        return {
            name: downstream[name].sum_to(guide_trace.nodes[name]["cond_indep_stack"])
            for name in coupling.plans
        }
