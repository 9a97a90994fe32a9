"""``TraceARMS_IWAE``: the multi-sample (IWAE) bound with local ARMS/CARMS, local LOORF or VIMCO."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax, random
from numpyro.infer import ELBO
from numpyro.infer.elbo import MultiFrameTensor

from ppl_arms.config import INFER_KEY, IWAE_ESTIMATORS, EstimatorConfig, check_choice
from ppl_arms.core.assembly import SiteArrays, iwae_surrogate
from ppl_arms.core.estimators import DistKind
from ppl_arms.numpyro._trace import (
    ParticleTraces,
    check_log_densities,
    nonfinite_log_densities,
    particle_traces,
    seed_plates,
)
from ppl_arms.numpyro.coupling import PARTICLE_AXIS, Coupling, SitePlan
from ppl_arms.numpyro.elbo import _check_vectorized, _shard_particles

__all__ = ["TraceARMS_IWAE"]


def _common_frames(traces: ParticleTraces, bound_plates: Sequence[str] | None) -> list[Any]:
    stacks = [set(s["cond_indep_stack"]) for s in traces.sample_sites("model").values()]
    common = set.intersection(*stacks) if stacks else set()
    if bound_plates is not None:
        by_name = {f.name: f for f in common}
        for name in bound_plates:
            if name not in by_name:
                raise ValueError(
                    f"bound_plates names plate '{name}', which is not common to every sample "
                    f"site of the model; common plates are {sorted(by_name)}"
                )
        common = {by_name[name] for name in bound_plates}
    for stack in stacks:
        for frame in stack - common:
            size = traces.model_trace[frame.name]["args"][0]
            if size > frame.size:
                raise ValueError(
                    f"TraceARMS_IWAE subsamples plate '{frame.name}', which is not one of the "
                    "plates the bound is taken over; only plates common to every sample site "
                    "(e.g. a data plate around the whole model) may be subsampled"
                )
    return sorted(common, key=lambda f: f.dim)


def _common_scale(traces: ParticleTraces, frames: list[Any]) -> float:
    scale = 1.0
    for frame in frames:
        scale *= traces.model_trace[frame.name]["args"][0] / frame.size
    return scale


class TraceARMS_IWAE(ELBO):
    r"""The multi-sample bound :math:`\log\frac1n\sum_i w_i` with unbiased discrete gradients.

    Two particle sets are drawn: ``n`` i.i.d. particles define the bound (and its direct gradient,
    :math:`\sum_i\tilde w_i\nabla_\phi\log w_i`, which is *not* zero-mean and is kept), and, for
    ``"arms"`` and ``"loorf"``, ``n`` more particles coupled per discrete site give the score part
    through local signals :math:`F_j=\sum_k\log\frac1n(\sum_{i\ne k}w_i+\tilde w_j)`, the **sum**
    over ``k`` of the per-sample local problems (averaging, as the reference code does, is ``1/n``
    too small and biased). ``"vimco"`` uses only the ``n`` i.i.d. particles with VIMCO's
    leave-one-out signals.

    **Which bound.** By default (``bound_plates=None``) the bound is taken per element of the
    plates common to every model sample site (for an amortised model: one bound per data point,
    summed; subsampling those plates is allowed and rescaled). If any latent lies outside them,
    e.g. a global latent, the common set is empty and the bound is over the whole trace. Pass
    ``bound_plates=()`` to force the whole-trace bound or a tuple of plate names to choose.

    Args:
        num_particles: ``n >= 2``, the number of samples inside the bound.
        estimator: ``"arms"`` (local ARMS/CARMS; ``2n`` model evaluations), ``"loorf"``
            (local LOORF; ``2n``) or ``"vimco"`` (``n``).
        copula: ``"dirichlet"`` or ``"gaussian"`` (``"arms"`` only).
        categorical_coupling: ``"stick_breaking_unsorted"`` (default), ``"stick_breaking"`` or
            ``"inverse_cdf"`` (see :data:`ppl_arms.config.CATEGORICAL_COUPLINGS`).
        bound_plates: ``None`` (automatic), ``()`` or plate names; see above.
        vectorize_particles: Must be ``True``.
        particle_sharding: Optional sharding of the particle axis (as in
            :class:`~ppl_arms.numpyro.TraceARMS_ELBO`).

    References:
        Y. Burda, R. Grosse, R. Salakhutdinov. "Importance Weighted Autoencoders." ICLR 2016.
        A. Mnih, D. Rezende. "Variational inference for Monte Carlo objectives." ICML 2016.
        A. Dimitriev, M. Zhou. "ARMS." ICML 2021 (multi-sample bound, with the sum over ``k``).
    """

    can_infer_discrete = True

    def __init__(
        self,
        num_particles: int = 4,
        estimator: str = "arms",
        copula: str = "dirichlet",
        categorical_coupling: str = "stick_breaking_unsorted",
        bound_plates: Sequence[str] | None = None,
        vectorize_particles: bool = True,
        particle_sharding: jax.sharding.Sharding | None = None,
    ) -> None:
        _check_vectorized(vectorize_particles)
        check_choice(estimator, IWAE_ESTIMATORS, "IWAE estimator")
        self.estimator = estimator
        self.spec = IWAE_ESTIMATORS[estimator]
        self.config = EstimatorConfig(
            self.spec.site_estimator, copula, categorical_coupling, num_particles
        )
        self.bound_plates = None if bound_plates is None else tuple(bound_plates)
        self.particle_sharding = particle_sharding
        super().__init__(num_particles=num_particles, vectorize_particles=True)

    def __repr__(self) -> str:
        return (
            f"TraceARMS_IWAE(num_particles={self.num_particles}, estimator={self.estimator!r}, "
            f"copula={self.config.copula!r}, bound_plates={self.bound_plates!r})"
        )

    @property
    def _num_sets(self) -> int:
        return self.spec.num_sets

    def loss(
        self,
        rng_key: jax.Array,
        param_map: dict[str, jax.Array],
        model: Callable,
        guide: Callable,
        *args: Any,
        **kwargs: Any,
    ) -> jax.Array:
        """Negative bound estimate; its gradient is the estimator (see the class docstring)."""
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
        n = self.num_particles
        plate_key, couple_key, rng_key = random.split(rng_key, 3)
        model = seed_plates(model, plate_key)
        guide = seed_plates(guide, plate_key)
        plans: dict[str, SitePlan] = {}
        static: dict[str, Any] = {}

        def coupling(fn: Callable) -> Coupling:
            return _IWAECoupling(
                fn, couple_key, self.config, first=n, num_coupled=n, vimco=self._num_sets == 1
            )

        def single_particle(key: jax.Array) -> dict[str, Any]:
            traces = particle_traces(model, guide, param_map, args, kwargs, key, coupling)
            plans.update(traces.coupling.plans)
            frames = _common_frames(traces, self.bound_plates)
            static["scale"] = _common_scale(traces, frames)
            return self._particle_outputs(traces, frames, static["scale"])

        keys = _shard_particles(random.split(rng_key, self._num_sets * n), self.particle_sharding)
        out = jax.vmap(single_particle, axis_name=PARTICLE_AXIS)(keys)
        check_log_densities(out["nonfinite"])
        sites = [
            SiteArrays(
                plan.estimator,
                plan.kind,
                plan.event_ndims,
                out["values"][name],
                out["params"][name],
                shared=None if name not in out["shared"] else out["shared"][name][n],
                mask=out["masks"].get(name),
                scale=out["scales"].get(name),
            )
            for name, plan in plans.items()
        ]
        loss = -iwae_surrogate(out["log_weight"], n, static["scale"], sites, vimco=self.spec.vimco)
        mutable = jax.tree.map(lambda x: x[0], out["mutable"]) if out["mutable"] else None
        return {"loss": loss, "mutable_state": mutable}

    def _particle_outputs(
        self, traces: ParticleTraces, frames: list[Any], scale: float
    ) -> dict[str, Any]:
        plans = traces.coupling.plans
        terms = MultiFrameTensor()
        for site in traces.sample_sites("model").values():
            terms.add((site["cond_indep_stack"], site["log_prob"]))
        for name, site in traces.sample_sites("guide").items():
            lp = site["log_prob"]
            if name in plans and plans[name].kind is not DistKind.OTHER:
                lp = lax.stop_gradient(lp)  # its direct gradient goes through the logit carrier
            terms.add((site["cond_indep_stack"], -lp))
        log_weight = terms.sum_to(frames) / scale
        values, params, masks, scales = {}, {}, {}, {}
        for name, plan in plans.items():
            site = traces.guide_trace[name]
            info = traces.coupling.distributions[name]
            values[name] = site["value"]
            if site["scale"] is not None:
                batch = info.coord_shape[: len(info.coord_shape) - info.event_ndims]
                scales[name] = jnp.broadcast_to(jnp.asarray(site["scale"], log_weight.dtype), batch)
            if plan.kind is DistKind.OTHER:
                params[name] = info.unmasked_log_prob(site["value"])
            else:
                params[name] = info.logits()
                if info.mask is not None:
                    masks[name] = info.mask
        return {
            "log_weight": log_weight,
            "values": values,
            "params": params,
            "masks": masks,
            "scales": scales,
            "shared": dict(traces.coupling.shared),
            "mutable": traces.mutable_state(),
            "nonfinite": nonfinite_log_densities(traces),
        }


class _IWAECoupling(Coupling):
    """The coupling handler of the IWAE loss: VIMCO refuses per-site estimator choices."""

    def __init__(self, *args: Any, vimco: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vimco = vimco

    def process_message(self, msg: dict[str, Any]) -> None:
        infer = msg.get("infer") or {}
        if self.vimco and msg["type"] == "sample" and not msg["is_observed"] and INFER_KEY in infer:
            raise ValueError(
                f"site '{msg['name']}' asks for infer={{'{INFER_KEY}': {infer[INFER_KEY]!r}}}, but "
                "TraceARMS_IWAE(estimator='vimco') uses VIMCO signals at every site; remove the key "
                "or use estimator='arms' / 'loorf', which honour per-site estimators"
            )
        super().process_message(msg)
