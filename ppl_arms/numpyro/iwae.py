"""``TraceARMS_IWAE``: the multi-sample (IWAE) bound (local estimators, VIMCO, VIMCO-ARMS)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from ppl_arms._checks import log_density_labels, log_density_sums
from ppl_arms._loss_docs import iwae_doc
from ppl_arms._objectives import bound_frames, log_weights
from ppl_arms._validation import check_vectorized, iwae_config
from ppl_arms.core.assembly import iwae_surrogate
from ppl_arms.core.carriers import Coupled
from ppl_arms.core.iwae_hybrid import hybrid_surrogate
from ppl_arms.numpyro._trace import ParticleOutputs, ParticleTraces, normalise
from ppl_arms.numpyro.coupling import Coupling
from ppl_arms.numpyro.elbo import _ParticleLoss

__all__ = ["TraceARMS_IWAE"]


@iwae_doc
class TraceARMS_IWAE(_ParticleLoss):
    r"""The multi-sample bound :math:`\log\frac1n\sum_i w_i` with unbiased discrete gradients.

    {SUMMARY}

    Args:
        {ARGS}
        vectorize_particles: Must be ``True``.
        particle_sharding: Optional sharding of the particle axis (as in
            :class:`~ppl_arms.numpyro.TraceARMS_ELBO`).

    References:
        {REFERENCES}
    """

    def __init__(
        self,
        num_particles: int = 4,
        estimator: str = "vimco",
        copula: str = "dirichlet",
        categorical_coupling: str = "stick_breaking_unsorted",
        bound_plates: Sequence[str] | None = None,
        vectorize_particles: bool = True,
        particle_sharding: jax.sharding.Sharding | None = None,
    ) -> None:
        check_vectorized(vectorize_particles, "through a named vmap axis")
        self.estimator = estimator
        self.spec, self.config = iwae_config(num_particles, estimator, copula, categorical_coupling)
        self.spec.check(num_particles, estimator)
        self.bound_plates = None if bound_plates is None else tuple(bound_plates)
        self.particle_sharding = particle_sharding
        super().__init__(num_particles=num_particles, vectorize_particles=True)

    def __repr__(self) -> str:
        return (
            f"TraceARMS_IWAE(num_particles={self.num_particles}, estimator={self.estimator!r}, "
            f"copula={self.config.copula!r}, bound_plates={self.bound_plates!r})"
        )

    @property
    def _num_sets(self) -> int:  # type: ignore[override]
        return self.spec.num_sets

    def _coupling(self, fn: Callable, key: jax.Array) -> Coupling:
        first, count = self.spec.coupled_range(self.num_particles)
        return Coupling(fn, key, self.config, first=first, num_coupled=count, vimco=self.spec.vimco)

    def _particle(
        self, traces: ParticleTraces, programs: tuple
    ) -> tuple[ParticleOutputs, tuple[Coupled, ...]]:
        records = normalise(traces)
        frames, scale = bound_frames(records.model, self.bound_plates)
        log_weight = log_weights(records, frames, scale)
        out = ParticleOutputs(
            jnp.zeros(()) if log_weight is None else log_weight,
            tuple(s.latent.bound_carrier() for s in records.latents),
            (),
            traces.mutable_state(),
            log_density_sums(records),
            log_density_labels(records),
            scale,
        )
        return out, tuple(traces.coupling.coupled(s.name) for s in records.latents)

    def _surrogate(self, out: ParticleOutputs, coupled: tuple[Coupled, ...]) -> jax.Array:
        sites = list(zip(out.carriers, coupled, strict=True))
        if self.spec.hybrid_coupled:
            m = self.spec.hybrid_coupled
            return -hybrid_surrogate(out.objective, m, out.scale, sites)
        n = self.num_particles
        return -iwae_surrogate(out.objective, n, out.scale, sites, vimco=self.spec.vimco)
