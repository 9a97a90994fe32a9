"""``TraceARMS_IWAE`` for Pyro: the multi-sample bound with local ARMS/CARMS, local LOORF or VIMCO."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pyro.infer.util import MultiFrameTensor
from pyro.poutine.trace_struct import Trace

from ppl_arms.config import INFER_KEY, IWAE_ESTIMATORS, EstimatorConfig, check_choice
from ppl_arms.core.assembly import SiteArrays, iwae_surrogate
from ppl_arms.core.estimators import DistKind
from ppl_arms.pyro.coupling import PARTICLE_PLATE, Coupling
from ppl_arms.pyro.elbo import _CoupledELBO

__all__ = ["TraceARMS_IWAE"]


class _IWAECoupling(Coupling):
    def __init__(self, *args: Any, vimco: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vimco = vimco

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        infer = msg.get("infer") or {}
        if self.vimco and not msg["is_observed"] and INFER_KEY in infer:
            raise ValueError(
                f"site '{msg['name']}' asks for infer={{'{INFER_KEY}': {infer[INFER_KEY]!r}}}, but "
                "TraceARMS_IWAE(estimator='vimco') uses VIMCO signals at every site; remove the key "
                "or use estimator='arms' / 'loorf', which honour per-site estimators"
            )
        super()._pyro_sample(msg)


class TraceARMS_IWAE(_CoupledELBO):
    r"""The multi-sample bound :math:`\log\frac1n\sum_i w_i` with unbiased discrete gradients.

    Two particle sets share one vectorised trace (plate size ``2n``): the first ``n`` particles are
    i.i.d. and define the bound and its direct gradient :math:`\sum_i\tilde w_i\nabla\log w_i` (not
    zero-mean; kept); for ``"arms"`` and ``"loorf"`` the other ``n`` are coupled per discrete site
    and give the score part through the summed local signals
    :math:`F_j=\sum_k\log\frac1n(\sum_{i\ne k}w_i+\tilde w_j)`. ``"vimco"`` uses ``n`` particles and
    VIMCO's leave-one-out signals. Pyro's own :class:`~pyro.infer.RenyiELBO` gives discrete guide
    sites zero gradient at ``alpha=0``; this loss is unbiased for them.

    **Which bound.** By default (``bound_plates=None``) the bound is taken per element of the plates
    common to every model sample site (one bound per data point for an amortised model, summed;
    subsampling those plates is rescaled) and over the whole trace when a latent lies outside them.
    ``bound_plates=()`` forces the whole-trace bound; a tuple of plate names chooses.

    Args:
        num_particles: ``n >= 2``, the number of samples inside the bound.
        estimator: ``"arms"`` (``2n`` model evaluations), ``"loorf"`` (``2n``) or ``"vimco"`` (``n``).
        copula: ``"dirichlet"`` or ``"gaussian"``.
        categorical_coupling: ``"stick_breaking_unsorted"`` (default), ``"stick_breaking"`` or
            ``"inverse_cdf"`` (see :data:`ppl_arms.config.CATEGORICAL_COUPLINGS`).
        bound_plates: ``None`` (automatic), ``()`` or plate names.
        max_plate_nesting: The model's plate nesting (guessed when not given).
        vectorize_particles: Must be ``True``.
        retain_graph: Passed to ``backward``.
    """

    def __init__(
        self,
        num_particles: int = 4,
        estimator: str = "arms",
        copula: str = "dirichlet",
        categorical_coupling: str = "stick_breaking_unsorted",
        bound_plates: Sequence[str] | None = None,
        max_plate_nesting: float = float("inf"),
        vectorize_particles: bool = True,
        retain_graph: bool | None = None,
    ) -> None:
        check_choice(estimator, IWAE_ESTIMATORS, "IWAE estimator")
        self.estimator = estimator
        self.spec = IWAE_ESTIMATORS[estimator]
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

    @staticmethod
    def _make_config(n: int, estimator: str, copula: str, coupling: str) -> EstimatorConfig:
        return EstimatorConfig(IWAE_ESTIMATORS[estimator].site_estimator, copula, coupling, n)

    def _plate_size(self, num_particles: int) -> int:  # type: ignore[override]
        return num_particles * self.spec.num_sets

    def _coupling(self) -> Coupling:
        n = self.num_particles
        return _IWAECoupling(
            self.config,
            first=n,
            num_coupled=n,
            num_particles=self._plate_size(n),
            vimco=self.spec.vimco,
        )

    def __repr__(self) -> str:
        return (
            f"TraceARMS_IWAE(num_particles={self.num_particles}, estimator={self.estimator!r}, "
            f"copula={self.config.copula!r}, bound_plates={self.bound_plates!r})"
        )

    def _frames(self, model_trace: Trace) -> tuple[list[Any], float]:
        stacks = [
            set(s["cond_indep_stack"]) for s in model_trace.nodes.values() if s["type"] == "sample"
        ]
        if not stacks:
            return [], 1.0  # no model sample site: nothing to take a bound over
        common = set.intersection(*stacks)
        if self.bound_plates is not None:
            by_name = {f.name: f for f in common}
            for name in self.bound_plates:
                if name not in by_name:
                    raise ValueError(
                        f"bound_plates names plate '{name}', which is not common to every sample "
                        f"site of the model; common plates are "
                        f"{sorted(k for k in by_name if k != PARTICLE_PLATE)}"
                    )
            common = {by_name[name] for name in (*self.bound_plates, PARTICLE_PLATE)}
        for stack in stacks:
            for frame in stack - common:
                if frame.full_size is not None and frame.full_size > frame.size:
                    raise ValueError(
                        f"TraceARMS_IWAE subsamples plate '{frame.name}', which is not one of the "
                        "plates the bound is taken over; only plates common to every sample site "
                        "(e.g. a data plate around the whole model) may be subsampled"
                    )
        scale = 1.0
        for frame in common:
            if frame.full_size is not None:
                scale *= frame.full_size / frame.size
        return list(common), scale

    def _loss(self, model_trace: Trace, guide_trace: Trace, coupling: Coupling) -> torch.Tensor:
        n = self.num_particles
        plans = coupling.plans
        frames, scale = self._frames(model_trace)
        terms = MultiFrameTensor()
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                terms.add((site["cond_indep_stack"], site["log_prob"]))
        for name, site in guide_trace.nodes.items():
            if site["type"] == "sample":
                lp = site["log_prob"]
                if name in plans and plans[name].kind is not DistKind.OTHER:
                    lp = lp.detach()  # its direct gradient goes through the logit carrier
                terms.add((site["cond_indep_stack"], -lp))
        log_weight = terms.sum_to(frames) / scale  # [2n or n, ...common plate dims]
        if not isinstance(log_weight, torch.Tensor):
            return torch.zeros(())  # no sample sites at all: the bound is log 1 = 0
        sites = []
        for name, plan in plans.items():
            info = coupling.distributions[name]
            site = guide_trace.nodes[name]
            is_other = plan.kind is DistKind.OTHER
            site_scale = None
            if not is_other:  # the direct term of a discrete site carries the site's own scale
                site_scale = torch.as_tensor(site["scale"], dtype=log_weight.dtype)
                site_scale = site_scale.expand(info.fn.batch_shape)
            sites.append(
                SiteArrays(
                    plan.estimator,
                    plan.kind,
                    plan.event_ndims,
                    info.coordinates(site["value"]),
                    info.unmasked_log_prob(site["value"]) if is_other else info.logits(),
                    shared=coupling.shared.get(name),
                    mask=info.mask,
                    scale=site_scale,
                )
            )
        return -iwae_surrogate(log_weight, n, scale, sites, vimco=self.spec.vimco)
