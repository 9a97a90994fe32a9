"""``TraceARMS_IWAE``: the multi-sample (IWAE) bound (local estimators, VIMCO, VIMCO-ARMS)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from ppl_arms._checks import log_density_labels, log_density_sums
from ppl_arms._loss_docs import iwae_doc
from ppl_arms._losses import BoundLoss
from ppl_arms._validation import check_vectorized
from ppl_arms.core.carriers import Coupled
from ppl_arms.numpyro._trace import ParticleOutputs, ParticleTraces, normalise
from ppl_arms.numpyro.coupling import Coupling
from ppl_arms.numpyro.elbo import _ParticleLoss

__all__ = ["TraceARMS_IWAE"]


@iwae_doc
class TraceARMS_IWAE(BoundLoss, _ParticleLoss):
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
        self.config = self._bound_config(num_particles, estimator, copula, categorical_coupling)
        self.bound_plates = None if bound_plates is None else tuple(bound_plates)
        self.particle_sharding = particle_sharding
        super().__init__(num_particles=num_particles, vectorize_particles=True)

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
        log_weight, _, scale = self._bound(records)
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
        sites = tuple(zip(out.carriers, coupled, strict=True))
        return self._bound_surrogate(out.objective, out.scale, sites)
