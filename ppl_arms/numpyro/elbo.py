"""``TraceARMS_ELBO`` and ``TraceGraphARMS_ELBO`` for NumPyro."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax, random
from numpyro.infer import ELBO
from numpyro.infer.elbo import MultiFrameTensor, get_nonreparam_deps

from ppl_arms.config import EstimatorConfig
from ppl_arms.core.assembly import SiteArrays, elbo_surrogate
from ppl_arms.core.estimators import DistKind
from ppl_arms.core.surrogate import logit_score
from ppl_arms.numpyro._trace import (
    ParticleTraces,
    check_log_densities,
    nonfinite_log_densities,
    particle_traces,
    seed_plates,
)
from ppl_arms.numpyro.coupling import PARTICLE_AXIS, Coupling, SitePlan

__all__ = ["TraceARMS_ELBO", "TraceGraphARMS_ELBO"]


_PARTICLE_OUTPUTS = ("elbo", "signals", "values", "scores", "mutable", "nonfinite")
"""Per-particle outputs of the vmapped particle function (batched along the particle axis)."""


def _shard_particles(keys: jax.Array, sharding: jax.sharding.Sharding | None) -> jax.Array:
    """Lay the particle keys out with ``sharding`` (no-op for ``None``).

    Under ``jit`` the SPMD partitioner propagates the layout into the particle ``vmap``, so the
    particles run on the devices of the sharding's mesh axis and the coupling's reductions over the
    particle axis become cross-device collectives; the numbers do not change.
    """
    if sharding is None:
        return keys
    return jax.lax.with_sharding_constraint(keys, sharding)


def _check_vectorized(vectorize_particles: Any) -> None:
    if vectorize_particles is not True:
        raise ValueError(
            "ppl_arms losses couple the particles through a named vmap axis and need "
            f"vectorize_particles=True, got {vectorize_particles!r}"
        )


class _CoupledELBO(ELBO, ABC):
    """Shared machinery: plate seeding, the coupled particle vmap, and the surrogate assembly."""

    can_infer_discrete = True

    def __init__(
        self,
        num_particles: int = 4,
        estimator: str = "arms",
        copula: str = "dirichlet",
        categorical_coupling: str = "stick_breaking_unsorted",
        vectorize_particles: bool = True,
        particle_sharding: jax.sharding.Sharding | None = None,
    ) -> None:
        _check_vectorized(vectorize_particles)
        self.config = EstimatorConfig(estimator, copula, categorical_coupling, num_particles)
        self.particle_sharding = particle_sharding
        super().__init__(num_particles=num_particles, vectorize_particles=True)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(num_particles={self.num_particles}, estimator={c.estimator!r}, "
            f"copula={c.copula!r}, categorical_coupling={c.categorical_coupling!r})"
        )

    # -- per-particle learning signals: the Trace / TraceGraph difference -----------------------

    @abstractmethod
    def _signals(
        self,
        traces: ParticleTraces,
        model: Callable,
        guide: Callable,
        param_map: dict,
        args: tuple,
        kwargs: dict,
    ) -> dict[str, jax.Array]:
        """Per discrete site, the learning signal of each particle, summed to the site's plates."""

    # -- the loss ---------------------------------------------------------------------------------

    def loss(
        self,
        rng_key: jax.Array,
        param_map: dict[str, jax.Array],
        model: Callable,
        guide: Callable,
        *args: Any,
        **kwargs: Any,
    ) -> jax.Array:
        """Negative ELBO estimate whose gradient is the estimator (see the class docstring)."""
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
        plans: dict[str, SitePlan] = {}

        def coupling(fn: Callable) -> Coupling:
            return Coupling(fn, couple_key, self.config)

        def single_particle(key: jax.Array) -> dict[str, Any]:
            traces = particle_traces(model, guide, param_map, args, kwargs, key, coupling)
            plans.update(traces.coupling.plans)
            return self._particle_outputs(traces, model, guide, param_map, args, kwargs)

        keys = _shard_particles(random.split(rng_key, self.num_particles), self.particle_sharding)
        # The shared masks and common logits come from reductions over the particle axis, so
        # they leave the vmap unbatched (once, not once per particle).
        out_axes = {key: 0 for key in _PARTICLE_OUTPUTS} | {"shared": None, "lead": None}
        out = jax.vmap(single_particle, axis_name=PARTICLE_AXIS, out_axes=out_axes)(keys)
        check_log_densities(out["nonfinite"])
        sites = [
            SiteArrays(
                plan.estimator,
                plan.kind,
                plan.event_ndims,
                out["values"][name],
                None,
                shared=out["shared"].get(name),
                signal=out["signals"][name],
                lead=out["lead"].get(name),
                score=out["scores"][name],
            )
            for name, plan in plans.items()
        ]
        loss = -elbo_surrogate(jnp.mean(out["elbo"]), sites)
        mutable = jax.tree.map(lambda x: x[0], out["mutable"]) if out["mutable"] else None
        return {"loss": loss, "mutable_state": mutable}

    def _particle_outputs(
        self,
        traces: ParticleTraces,
        model: Callable,
        guide: Callable,
        param_map: dict,
        args: tuple,
        kwargs: dict,
    ) -> dict[str, Any]:
        plans = traces.coupling.plans
        elbo = jnp.zeros(())
        for site in traces.sample_sites("model").values():
            elbo = elbo + jnp.sum(site["log_prob"])
        for name, site in traces.sample_sites("guide").items():
            lp = jnp.sum(site["log_prob"])
            elbo = elbo - (lax.stop_gradient(lp) if name in plans else lp)
        values, scores = {}, {}
        for name, plan in plans.items():
            site = traces.guide_trace[name]
            dist_info = traces.coupling.distributions[name]
            values[name] = site["value"]
            if plan.kind is DistKind.OTHER:
                scores[name] = dist_info.unmasked_log_prob(site["value"])
            else:
                # the particle's score surrogate: [*coords], no K axis (the logits stay inside)
                scores[name] = logit_score(plan.kind, site["value"], dist_info.logits())
        signals = self._signals(traces, model, guide, param_map, args, kwargs)
        return {
            "elbo": elbo,
            "signals": signals,
            "values": values,
            "scores": scores,
            "shared": dict(traces.coupling.shared),
            "lead": dict(traces.coupling.lead),
            "mutable": traces.mutable_state(),
            "nonfinite": nonfinite_log_densities(traces),
        }


class TraceARMS_ELBO(_CoupledELBO):
    r"""ELBO with ARMS/CARMS gradients at discrete guide sites, for :class:`numpyro.infer.SVI`.

    Each discrete guide site draws its ``num_particles`` values jointly through a copula
    (independently per element), and its learning signal is, per plate element, the ELBO terms of
    that element plus every term outside the site's plates (as :class:`~numpyro.infer.Trace_ELBO`
    would use). The loss value is the negated plain Monte Carlo ELBO over the particles; its gradient
    is the estimator at discrete sites, the pathwise gradient at reparameterised sites, and the usual
    gradient for model parameters. Scores are unscaled and unmasked; subsampling scales and masks
    enter only the learning signals, so expected gradients equal the full-data gradient.

    .. math::
        \hat g_\phi=\sum_{\text{sites}}\sum_{i=1}^n c_i\,\nabla_\phi\log q_\phi(z_i),\qquad
        c_i=\text{debias}(p)\,\frac{f_i-\bar f}{n-1}\ \text{(ARMS)}.

    A site whose parameters differ across particles (they depend on upstream per-particle samples)
    is detected inside ``jit``; there the particles draw i.i.d. values and LOORF is used, which stays
    unbiased.

    Args:
        num_particles: Number of coupled particles ``n >= 2``.
        estimator: Default estimator of discrete sites: ``"arms"`` (ARMS at Bernoulli, CARMS at
            categorical sites), ``"loorf"``, ``"disarm"`` (``n/2`` antithetic pairs, Bernoulli only)
            or ``"reinforce"`` (no baseline). Override per site with ``infer={"estimator": ...}`` or
            :func:`~ppl_arms.numpyro.config_estimator`.
        copula: ``"dirichlet"`` or ``"gaussian"``.
        categorical_coupling: ``"stick_breaking_unsorted"`` (the default at every ``K``: stick
            breaking in index order with the most probable category last, :math:`O(nK+n^2)`),
            ``"stick_breaking"`` (sticks sorted by probability) or ``"inverse_cdf"`` (CARMS-I,
            :math:`O(K^3+n^2K^2)`); all exact, see :data:`ppl_arms.config.CATEGORICAL_COUPLINGS`.
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
        A. Dimitriev, M. Zhou. "ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary
        Variables." ICML 2021. A. Dimitriev, M. Zhou. "CARMS: Categorical-Antithetic-REINFORCE
        Multi-Sample Gradient Estimator." NeurIPS 2021.
    """

    def _signals(
        self,
        traces: ParticleTraces,
        model: Callable,
        guide: Callable,
        param_map: dict,
        args: tuple,
        kwargs: dict,
    ) -> dict[str, jax.Array]:
        costs = MultiFrameTensor()
        for site in traces.sample_sites("model").values():
            costs.add((site["cond_indep_stack"], lax.stop_gradient(site["log_prob"])))
        for site in traces.sample_sites("guide").values():
            costs.add((site["cond_indep_stack"], -lax.stop_gradient(site["log_prob"])))
        return {
            name: costs.sum_to(traces.guide_trace[name]["cond_indep_stack"])
            for name in traces.coupling.plans
        }


class TraceGraphARMS_ELBO(_CoupledELBO):
    r"""Like :class:`TraceARMS_ELBO`, with dependency-graph Rao-Blackwellised learning signals.

    Each discrete site's learning signal is only its *downstream* cost: the model and guide terms
    whose value depends on the site (found by NumPyro's provenance tracking,
    :func:`numpyro.infer.elbo.get_nonreparam_deps`), summed to the site's plates. Upstream and
    unrelated terms, pure noise for this site, are left out. Unlike NumPyro's
    :class:`~numpyro.infer.TraceGraph_ELBO`, the score term is not scaled again under subsampling.

    Args are those of :class:`TraceARMS_ELBO`.
    """

    def _signals(
        self,
        traces: ParticleTraces,
        model: Callable,
        guide: Callable,
        param_map: dict,
        args: tuple,
        kwargs: dict,
    ) -> dict[str, jax.Array]:
        latents = {name: site["value"] for name, site in traces.sample_sites("guide").items()}
        model_deps, guide_deps = get_nonreparam_deps(
            model, guide, args, kwargs, param_map, latents=latents
        )
        downstream: dict[str, MultiFrameTensor] = defaultdict(MultiFrameTensor)
        for sign, which, deps in ((1.0, "model", model_deps), (-1.0, "guide", guide_deps)):
            for name, site in traces.sample_sites(which).items():
                for key in deps[name]:
                    downstream[key].add(
                        (site["cond_indep_stack"], sign * lax.stop_gradient(site["log_prob"]))
                    )
        return {
            name: downstream[name].sum_to(traces.guide_trace[name]["cond_indep_stack"])
            for name in traces.coupling.plans
        }
