"""``TraceARMS_ELBO`` and ``TraceGraphARMS_ELBO`` for NumPyro."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import random
from numpyro.infer import ELBO
from numpyro.infer.elbo import get_nonreparam_deps

from ppl_arms._checks import log_density_labels, log_density_sums
from ppl_arms._loss_docs import elbo_doc, graph_doc
from ppl_arms._losses import EstimatorLoss, SignalLoss
from ppl_arms._objectives import elbo_value
from ppl_arms._records import SiteGradient
from ppl_arms._sample_gradient import SampleGradients, site_gradients
from ppl_arms._validation import check_vectorized
from ppl_arms.config import EstimatorConfig, learned_name
from ppl_arms.core.carriers import Coupled
from ppl_arms.core.estimators import SiteEstimator
from ppl_arms.numpyro._trace import (
    ParticleOutputs,
    ParticleTraces,
    check_finite,
    normalise,
    particle_traces,
    seed_plates,
)
from ppl_arms.numpyro.coupling import PARTICLE_AXIS, Coupling
from ppl_arms.numpyro.sample_gradient import one_hot_site_name, sample_gradients

__all__ = ["TraceARMS_ELBO", "TraceGraphARMS_ELBO"]


def _shard_particles(keys: jax.Array, sharding: jax.sharding.Sharding | None) -> jax.Array:
    """Lay the particle keys out with ``sharding`` (no-op for ``None``).

    Under ``jit`` the SPMD partitioner propagates the layout into the particle ``vmap``, so the
    particles run on the devices of the sharding's mesh axis and the coupling's reductions over the
    particle axis become cross-device collectives; the numbers do not change.
    """
    if sharding is None:
        return keys
    return jax.lax.with_sharding_constraint(keys, sharding)


class _ParticleLoss(EstimatorLoss, ELBO, ABC):
    """Shared machinery: plate seeding, the coupled particle ``vmap`` and the entry points.

    Each particle returns :class:`~ppl_arms.numpyro._trace.ParticleOutputs` (batched along the
    particle axis) and, per estimated site, the :class:`~ppl_arms.core.carriers.Coupled` facts its
    coupling found by reductions over the particle axis (unbatched: once, not once per particle).
    """

    can_infer_discrete = True
    config: EstimatorConfig
    particle_sharding: jax.sharding.Sharding | None
    _num_sets = 1
    """Particle sets of ``num_particles`` each (the IWAE bound's i.i.d. and coupled sets)."""

    def _coupling(self, fn: Callable, key: jax.Array) -> Coupling:
        return Coupling(fn, key, self.config)

    @abstractmethod
    def _particle(
        self, traces: ParticleTraces, programs: tuple
    ) -> tuple[ParticleOutputs, tuple[Coupled, ...]]:
        """One particle's outputs, from its traces (``programs``: model, guide, params, args)."""

    @abstractmethod
    def _surrogate(self, out: ParticleOutputs, coupled: tuple[Coupled, ...]) -> jax.Array:
        """The loss of all particles' outputs (value: the negated estimate)."""

    def loss(
        self,
        rng_key: jax.Array,
        param_map: dict[str, jax.Array],
        model: Callable,
        guide: Callable,
        *args: Any,
        **kwargs: Any,
    ) -> jax.Array:
        """Negated estimate whose gradient is the estimator (see the class docstring)."""
        return self.loss_with_mutable_state(rng_key, param_map, model, guide, *args, **kwargs)[
            "loss"
        ]

    def loss_with_mutable_state(
        self,
        rng_key: jax.Array,
        param_map: dict[str, jax.Array],
        model: Callable,
        guide: Callable,
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Like :meth:`loss`, also returning the mutable state of the first particle."""
        plate_key, couple_key, rng_key = random.split(rng_key, 3)
        model = seed_plates(model, plate_key)
        guide = seed_plates(guide, plate_key)
        programs = (model, guide, param_map, args, kwargs)

        def coupling(fn: Callable) -> Coupling:
            return self._coupling(fn, couple_key)

        def single_particle(key: jax.Array) -> tuple[ParticleOutputs, tuple[Coupled, ...]]:
            traces = particle_traces(model, guide, param_map, args, kwargs, key, coupling)
            return self._particle(traces, programs)

        num = self._num_sets * self.num_particles
        keys = _shard_particles(random.split(rng_key, num), self.particle_sharding)
        out, coupled = jax.vmap(single_particle, axis_name=PARTICLE_AXIS, out_axes=(0, None))(keys)
        check_finite(out)
        return {"loss": self._surrogate(out, coupled), "mutable_state": out.first_mutable()}


class _CoupledELBO(SignalLoss, _ParticleLoss):
    """The ELBO losses: learning signals per particle, chosen by the subclass (Trace or Graph)."""

    def __init__(
        self,
        num_particles: int = 4,
        estimator: str = "arms",
        copula: str = "dirichlet",
        categorical_coupling: str = "stick_breaking_unsorted",
        vectorize_particles: bool = True,
        particle_sharding: jax.sharding.Sharding | None = None,
    ) -> None:
        check_vectorized(vectorize_particles, "through a named vmap axis")
        self.config = EstimatorConfig(estimator, copula, categorical_coupling, num_particles)
        self.particle_sharding = particle_sharding
        super().__init__(num_particles=num_particles, vectorize_particles=True)

    def _provenance(self, traces: ParticleTraces, programs: tuple) -> tuple | None:
        if not self._track_provenance:
            return None
        model, guide, param_map, args, kwargs = programs
        latents = {
            name: site["value"]
            for name, site in traces.guide_trace.items()
            if site["type"] == "sample"
        }
        return get_nonreparam_deps(model, guide, args, kwargs, param_map, latents=latents)

    def _site_gradients(self, traces: ParticleTraces, programs: tuple) -> dict[str, SiteGradient]:
        """:func:`~ppl_arms._sample_gradient.site_gradients`, inside the particle ``vmap``.

        Traced once under ``jit``: the non-differentiable sites' warning and the missing-parameter
        warning are issued at trace time, once per site. The learned leaves are read from
        ``param_map`` under :func:`~ppl_arms.config.learned_name` (declared in the guide by
        :func:`~ppl_arms.numpyro.config_estimator` or :func:`ppl_arms.numpyro.learned_params`),
        else their initial values.
        """
        model, guide, param_map, args, kwargs = programs
        undeclared = self.__dict__.setdefault("_warned_learned", set())

        def sample(sites: dict) -> SampleGradients:
            guide_trace = traces.guide_trace
            return sample_gradients(
                model, guide, args, kwargs, guide_trace, sites, param_map=param_map
            )

        def learned(site: str, est: SiteEstimator, leaf: str, init: Any, g: Any) -> jax.Array:
            key = learned_name(est.name, site, leaf)
            if key not in param_map and site not in undeclared:
                undeclared.add(site)
                warnings.warn(
                    f"site '{site}': the learned parameters of estimator '{est.name}' (e.g. "
                    f"'{key}') are not among SVI's params, so they keep their initial values "
                    "(the estimate stays unbiased; its variance is not trained). Wrap the "
                    f"guide with config_estimator(guide, '{est.name}') or declare them in it "
                    f"with ppl_arms.numpyro.learned.learned_params('{site}', '{est.name}').",
                    UserWarning,
                    stacklevel=2,
                )
            return param_map.get(key, init)

        warned = self.__dict__.setdefault("_warned_sites", set())
        route = (
            "sample an integer Categorical and consume the deterministic site "
            f"'{one_hot_site_name('<site>')}' = jax.nn.one_hot(value, K) in the model"
        )
        return site_gradients(traces.coupling.plans, sample, warned, route, learned)

    def _particle(
        self, traces: ParticleTraces, programs: tuple
    ) -> tuple[ParticleOutputs, tuple[Coupled, ...]]:
        gradients = self._site_gradients(traces, programs)
        records = normalise(traces, self._provenance(traces, programs), gradients)
        out = ParticleOutputs(
            elbo_value(records, jnp.zeros(())),
            tuple(s.latent.score_carrier() for s in records.latents),
            self._site_signals(records),
            traces.mutable_state(),
            log_density_sums(records),
            log_density_labels(records),
        )
        return out, tuple(traces.coupling.coupled(s.name) for s in records.latents)

    def _surrogate(self, out: ParticleOutputs, coupled: tuple[Coupled, ...]) -> jax.Array:
        sites = zip(out.carriers, out.signals, coupled, strict=True)
        return self._elbo_surrogate(jnp.mean(out.objective), tuple(sites))


@elbo_doc(":class:`~numpyro.infer.Trace_ELBO`", "ppl_arms.numpyro.config_estimator")
class TraceARMS_ELBO(_CoupledELBO):
    r"""ELBO with ARMS/CARMS gradients at discrete guide sites, for :class:`numpyro.infer.SVI`.

    {SUMMARY}

    A site whose parameters differ across particles (they depend on upstream per-particle samples)
    is detected inside ``jit``; there the particles draw i.i.d. values and LOORF is used, which stays
    unbiased.

    Args:
        {ARGS}
        vectorize_particles: Must be ``True`` (particles are coupled across a named vmap axis).
        particle_sharding: Optional :class:`jax.sharding.Sharding` of the particle axis, e.g.
            ``NamedSharding(mesh, PartitionSpec("particles"))``: under ``jit`` the particles are
            spread over that mesh axis (combine with data-plate arrays sharded on another axis).
            The loss and its gradient are unchanged (see :doc:`/scale`).

    Example::

        from numpyro.infer import SVI
        from ppl_arms.numpyro import TraceARMS_ELBO

        svi = SVI(model, guide, optax.adam(1e-3), loss=TraceARMS_ELBO(num_particles=4))
        result = svi.run(random.key(0), 2000, data)

    References:
        {REFERENCES}
    """


@graph_doc("NumPyro's provenance tracking, :func:`numpyro.infer.elbo.get_nonreparam_deps`")
class TraceGraphARMS_ELBO(_CoupledELBO):
    r"""Like :class:`TraceARMS_ELBO`, with dependency-graph Rao-Blackwellised learning signals.

    {SUMMARY}

    Unlike NumPyro's :class:`~numpyro.infer.TraceGraph_ELBO`, the score term is not scaled again
    under subsampling.

    Args are those of :class:`TraceARMS_ELBO`.
    """

    _track_provenance = True
