"""``TraceARMS_IWAE`` for Pyro: the multi-sample bound (local estimators, VIMCO, VIMCO-ARMS)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ppl_arms._loss_docs import iwae_doc
from ppl_arms._losses import BoundLoss
from ppl_arms._records import Traces
from ppl_arms.config import EstimatorConfig
from ppl_arms.pyro.coupling import PARTICLE_PLATE, Coupling
from ppl_arms.pyro.elbo import _CoupledELBO

__all__ = ["TraceARMS_IWAE"]


@iwae_doc
class TraceARMS_IWAE(BoundLoss, _CoupledELBO):
    r"""The multi-sample bound :math:`\log\frac1n\sum_i w_i` with unbiased discrete gradients.

    {SUMMARY}

    The particle sets share one vectorised trace (a particle plate of ``2n`` for the local
    estimators). Pyro's own :class:`~pyro.infer.RenyiELBO` gives discrete guide sites zero gradient
    at ``alpha=0``; this loss is unbiased for them.

    Args:
        {ARGS}
        max_plate_nesting: The model's plate nesting (guessed when not given).
        vectorize_particles: Must be ``True``.
        retain_graph: Passed to ``backward``.

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
        max_plate_nesting: float = float("inf"),
        vectorize_particles: bool = True,
        retain_graph: bool | None = None,
    ) -> None:
        self.bound_plates = None if bound_plates is None else tuple(bound_plates)
        super().__init__(
            num_particles,
            estimator,
            copula,
            categorical_coupling,
            max_plate_nesting,
            vectorize_particles,
            retain_graph,
        )

    def _make_config(self, n: int, estimator: str, copula: str, coupling: str) -> EstimatorConfig:
        return self._bound_config(n, estimator, copula, coupling)

    def _plate_size(self, num_particles: int) -> int:  # type: ignore[override]
        return num_particles * self.spec.num_sets

    def _coupling(self) -> Coupling:
        n = self.num_particles
        first, count = self.spec.coupled_range(n)
        return Coupling(
            self.config,
            first=first,
            num_coupled=count,
            num_particles=self._plate_size(n),
            vimco=self.spec.vimco,
        )

    def _loss(self, traces: Traces, coupling: Coupling) -> torch.Tensor:
        log_weight, _, scale = self._bound(traces, always=(PARTICLE_PLATE,))  # [2n or n, ...]
        if log_weight is None:
            return torch.zeros(())  # no sample sites at all: the bound is log 1 = 0
        sites = [(s.latent.bound_carrier(), coupling.coupled(s.name)) for s in traces.latents]
        return self._bound_surrogate(log_weight, scale, sites)
