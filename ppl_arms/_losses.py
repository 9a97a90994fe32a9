r"""What both adapters' loss classes share, written once: settings, ``repr`` and the surrogates.

Each adapter's loss derives from its host's ``ELBO`` and from one of these mixins. The mixins know
the records (:mod:`ppl_arms._records`) and the core, never the host: the adapter traces the
programs, normalises the traces, and hands the records (Pyro: of all particles at once; NumPyro:
of one particle inside its ``vmap``) to :meth:`SignalLoss._site_signals` or
:meth:`BoundLoss._bound`, then the arrays of all particles to the core's surrogate
(:meth:`SignalLoss._elbo_surrogate`, :meth:`BoundLoss._bound_surrogate`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from ppl_arms._checks import check_signal_shape
from ppl_arms._objectives import bound_frames, graph_signals, log_weights, trace_signals
from ppl_arms._records import Frame, Traces
from ppl_arms._typing import Array
from ppl_arms._validation import iwae_config
from ppl_arms.config import EstimatorConfig, IWAEEstimator
from ppl_arms.core._ops import get_ops
from ppl_arms.core.assembly import elbo_surrogate, iwae_surrogate
from ppl_arms.core.iwae_hybrid import hybrid_surrogate

__all__ = ["BoundLoss", "EstimatorLoss", "SignalLoss"]


class EstimatorLoss:
    """A loss with an estimator configuration (``config``) over ``num_particles`` particles."""

    config: EstimatorConfig
    num_particles: int

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(num_particles={self.num_particles}, estimator={c.estimator!r}, "
            f"copula={c.copula!r}, categorical_coupling={c.categorical_coupling!r})"
        )


class SignalLoss(EstimatorLoss):
    """An ELBO loss: per-particle learning signals of the Trace or the TraceGraph form."""

    _track_provenance = False
    """The TraceGraph form: the host records which guide sites each log-density depends on, and
    a site's signal is only its downstream terms (:func:`~ppl_arms._objectives.graph_signals`);
    else every term (:func:`~ppl_arms._objectives.trace_signals`)."""

    def _site_signals(self, traces: Traces) -> tuple[Array, ...]:
        """The estimated sites' learning signals, in trace order, each checked against its site."""
        signals = graph_signals(traces) if self._track_provenance else trace_signals(traces)
        for site in traces.latents:
            shape = tuple(get_ops(signals[site.name]).shape(signals[site.name]))
            check_signal_shape(site.name, shape, site.latent.batch_shape)
        return tuple(signals[site.name] for site in traces.latents)

    @staticmethod
    def _elbo_surrogate(elbo: Array, sites: Sequence[tuple]) -> Array:
        """The loss: the negated surrogate of the particles' mean ELBO ``elbo``."""
        return -elbo_surrogate(elbo, list(sites))


class BoundLoss(EstimatorLoss):
    """``TraceARMS_IWAE``: the multi-sample bound of one :class:`~ppl_arms.config.IWAEEstimator`."""

    spec: IWAEEstimator
    estimator: str
    bound_plates: tuple[str, ...] | None

    def _bound_config(
        self, num_particles: int, estimator: str, copula: str, categorical_coupling: str
    ) -> EstimatorConfig:
        """Check and keep the IWAE estimator; return the site-level configuration it implies."""
        self.estimator = estimator
        self.spec, config = iwae_config(num_particles, estimator, copula, categorical_coupling)
        self.spec.check(num_particles, estimator)
        return config

    def __repr__(self) -> str:
        return (
            f"TraceARMS_IWAE(num_particles={self.num_particles}, estimator={self.estimator!r}, "
            f"copula={self.config.copula!r}, bound_plates={self.bound_plates!r})"
        )

    def _bound(
        self, traces: Traces, always: Collection[str] = ()
    ) -> tuple[Array | None, frozenset[Frame], float]:
        """The log-weights over the bound's plates (``None``: no sample sites), the plates, scale.

        Args:
            traces: The records.
            always: Plates always in the bound (Pyro's particle plate).
        """
        frames, scale = bound_frames(traces.model, self.bound_plates, always=always)
        return log_weights(traces, frames, scale), frames, scale

    def _bound_surrogate(self, log_weight: Array, scale: float, sites: Sequence[Any]) -> Array:
        """The loss: the negated surrogate of the bound (hybrid, VIMCO or local signals).

        Args:
            log_weight: ``[P, ...]``: the log-weights of all particles over the bound's plates.
            scale: The bound's subsampling scale.
            sites: Per estimated site, its bound carrier and its :class:`~ppl_arms.core.Coupled`.
        """
        if self.spec.hybrid_coupled:
            return -hybrid_surrogate(log_weight, self.spec.hybrid_coupled, scale, list(sites))
        n = self.num_particles
        return -iwae_surrogate(log_weight, n, scale, list(sites), vimco=self.spec.vimco)
