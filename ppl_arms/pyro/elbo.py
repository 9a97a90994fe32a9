"""``TraceARMS_ELBO`` and ``TraceGraphARMS_ELBO`` for Pyro."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.infer.tracegraph_elbo import TrackNonReparam
from pyro.infer.util import is_validation_enabled, torch_backward, torch_item
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape, warn_if_nan

from ppl_arms._checks import check_guide_covers_model
from ppl_arms._loss_docs import elbo_doc, graph_doc
from ppl_arms._losses import EstimatorLoss, SignalLoss
from ppl_arms._objectives import elbo_value
from ppl_arms._records import SiteGradient, Traces
from ppl_arms._sample_gradient import SampleGradients, site_gradients
from ppl_arms._validation import check_vectorized
from ppl_arms.config import EstimatorConfig, learned_name
from ppl_arms.core.estimators import SiteEstimator
from ppl_arms.pyro._sites import broadcast_base
from ppl_arms.pyro._trace import check_finite, model_latents, normalise
from ppl_arms.pyro.coupling import Coupling
from ppl_arms.pyro.sample_gradient import sample_gradients

__all__ = ["TraceARMS_ELBO", "TraceGraphARMS_ELBO"]


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


class _CoupledELBO(EstimatorLoss, ELBO):
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
        check_vectorized(vectorize_particles, "of one vectorised trace")
        self.config = self._make_config(num_particles, estimator, copula, categorical_coupling)
        super().__init__(
            num_particles=self._plate_size(num_particles),
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=True,
            retain_graph=retain_graph,
        )
        self.num_particles = num_particles

    def _make_config(self, n: int, estimator: str, copula: str, coupling: str) -> EstimatorConfig:
        return EstimatorConfig(estimator, copula, coupling, n)

    @staticmethod
    def _plate_size(num_particles: int) -> int:
        return num_particles

    def _coupling(self) -> Coupling:
        n = self.num_particles
        return Coupling(self.config, first=0, num_coupled=n, num_particles=n)

    # -- traces ------------------------------------------------------------------------------

    def _vectorized_num_particles(self, fn: Callable) -> Callable:
        from pyro import plate

        return plate(
            "num_particles_vectorized",
            self._plate_size(self.num_particles),
            dim=-self.max_plate_nesting,
        )(fn)

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> tuple:
        model_trace, guide_trace, _, _ = self._coupled_traces(model, guide, args, kwargs)
        return model_trace, guide_trace

    def _site_gradients(
        self, programs: tuple, traces: tuple[Trace, Trace], coupling: Coupling
    ) -> dict[str, SiteGradient]:
        r""":func:`~ppl_arms._sample_gradient.site_gradients`, from the unpruned particle traces.

        ``programs`` are the vectorised model, guide, args and kwargs; ``traces`` the particle
        run's model and guide traces before pruning (their subsample sites fix the plates' indices
        in the replay). The learned leaves are ``pyro.param``\ s named by
        :func:`~ppl_arms.config.learned_name`, so ``SVI`` trains them.
        """
        model, guide, args, kwargs = programs
        model_trace, guide_trace = traces

        def sample(sites: dict) -> SampleGradients:
            return sample_gradients(model, guide, args, kwargs, guide_trace, sites, model_trace)

        def learned(site: str, est: SiteEstimator, leaf: str, init: Any, g: Any) -> torch.Tensor:
            v = pyro.param(learned_name(est.name, site, leaf), init)
            return v.expand(g.shape[0], *v.shape)

        warned = self.__dict__.setdefault("_warned_sites", set())
        return site_gradients(coupling.plans, sample, warned, "use OneHotCategorical", learned)

    def _coupled_traces(
        self,
        model: Callable,
        guide: Callable,
        args: tuple,
        kwargs: dict,
        sample_gradient: bool = False,
    ) -> tuple[Trace, Trace, Traces, Coupling]:
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
        check_guide_covers_model(model_latents(model_trace), guide_trace.nodes)
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        gradients = {}
        if sample_gradient:
            unpruned = (model_trace, guide_trace)
            programs = (model, guide, args, kwargs)
            gradients = self._site_gradients(programs, unpruned, coupling)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        model_trace.compute_log_prob()
        guide_trace.compute_score_parts()
        traces = normalise(model_trace, guide_trace, coupling, self._track_provenance, gradients)
        check_finite(traces)
        if is_validation_enabled():
            for tr in (model_trace, guide_trace):
                for site in tr.nodes.values():
                    if site["type"] == "sample":
                        check_site_shape(site, self.max_plate_nesting)
        return model_trace, guide_trace, traces, coupling

    def _traces(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> Iterator:
        if self.max_plate_nesting == float("inf"):
            # The guess runs the programs once; keep it out of the CPU random stream, so a seeded
            # first call draws what a later call would.
            with torch.random.fork_rng(devices=[]):
                self._guess_max_plate_nesting(model, guide, args, kwargs)
        _, _, traces, coupling = self._coupled_traces(
            self._vectorized_num_particles(model),
            self._vectorized_num_particles(guide),
            args,
            kwargs,
            sample_gradient=True,
        )
        yield traces, coupling

    # -- the surrogate -------------------------------------------------------------------------

    @abstractmethod
    def _loss(self, traces: Traces, coupling: Coupling) -> torch.Tensor:
        """The surrogate loss of one draw of coupled particle traces (value: the plain estimate)."""

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The negated ELBO estimate as a tensor whose gradient is the estimator.

        Usable directly, or through ``elbo(model, guide)`` as a :class:`torch.nn.Module`.
        """
        for traces, coupling in self._traces(model, guide, args, kwargs):
            loss = self._loss(traces, coupling)
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


class _SignalELBO(SignalLoss, _CoupledELBO):
    """An ELBO whose discrete sites' learning signals are chosen by the subclass (Trace or Graph)."""

    def _loss(self, traces: Traces, coupling: Coupling) -> torch.Tensor:
        signals = self._site_signals(traces)
        sites = []
        for site, signal in zip(traces.latents, signals, strict=True):
            base = None if site.name in coupling.shared else broadcast_base(site.latent.params)
            sites.append((site.latent.elbo_carrier(base), signal, coupling.coupled(site.name)))
        elbo = elbo_value(traces, torch.zeros(()))
        return self._elbo_surrogate(elbo / self.num_particles, sites)


@elbo_doc(":class:`~pyro.infer.Trace_ELBO`", "ppl_arms.pyro.config_estimator")
class TraceARMS_ELBO(_SignalELBO):
    r"""ELBO with ARMS/CARMS gradients at discrete guide sites, for :class:`pyro.infer.SVI`.

    {SUMMARY}

    A site whose parameters differ across particles (they depend on upstream per-particle samples)
    keeps Pyro's i.i.d. draws there and uses LOORF, which stays unbiased. Implements ``loss``,
    ``loss_and_grads`` and ``differentiable_loss`` (so ``elbo(model, guide)`` is a
    :class:`torch.nn.Module`); particles are always vectorised.

    Args:
        {ARGS}
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
        {REFERENCES}
    """


@graph_doc("Pyro's provenance tracking, :class:`~pyro.infer.tracegraph_elbo.TrackNonReparam`")
class TraceGraphARMS_ELBO(_SignalELBO):
    r"""Like :class:`TraceARMS_ELBO`, with dependency-graph Rao-Blackwellised learning signals.

    {SUMMARY}

    Unlike Pyro's :class:`~pyro.infer.TraceGraph_ELBO` it needs no baselines (the other particles
    are the baseline) and it implements ``differentiable_loss``.

    Args are those of :class:`TraceARMS_ELBO`.
    """

    _track_provenance = True
