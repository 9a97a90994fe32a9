"""The coupling handler: draws n coupled values per discrete site across vmapped particles.

The ELBOs run the particles with ``jax.vmap(..., axis_name=PARTICLE_AXIS)``. Inside the vmapped body
there is no particle dimension in any shape, so the handler draws the *whole* ``n``-particle copula
for a site from one key that is shared by all particles (closed over, not batched, so JAX computes
it once) and picks its own row with ``lax.axis_index``. It wraps the seeded guide (outermost), so it
sees each site's fully broadcast distribution, after plates, masks and ``infer_config``.

At each non-reparameterised guide site it also checks, inside ``jit``, whether the site's
parameters are identical across the coupled particles (``pmax == pmin`` per coordinate). Where they
differ (the parameters depend on upstream per-particle samples), the coupled draw would be biased,
so that coordinate takes an i.i.d. sample instead (the particle's row of the i.i.d. base noise with
its own parameters) and the loss uses LOORF there. The reductions over the particle axis are
unbatched, so the loss gets the shared mask and the common logits once, not once per particle.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax, random
from numpyro.primitives import Messenger

from ppl_arms._planning import PlannedSites
from ppl_arms.config import EstimatorConfig
from ppl_arms.core.copulas import NoiseKind
from ppl_arms.core.estimators import DistKind, SiteEstimator
from ppl_arms.numpyro._sites import SiteDistribution, unwrap

__all__ = ["PARTICLE_AXIS", "Coupling"]

PARTICLE_AXIS = "_ppl_arms_particles"
"""The ``vmap`` axis name of the particles."""


_DRAW = {NoiseKind.NORMAL: random.normal, NoiseKind.UNIFORM: random.uniform}


class Coupling(PlannedSites, Messenger):
    """Draw coupled values at the discrete sites of a guide running inside a particle ``vmap``.

    Args:
        fn: The (seeded, substituted) guide.
        key: The copula key, shared by all particles of one loss evaluation.
        config: The loss's estimator configuration.
        first: Index of the first coupled particle on :data:`PARTICLE_AXIS`.
        num_coupled: Number of coupled particles (``first .. first + num_coupled - 1``); particles
            outside this range sample i.i.d. (the IWAE bound's own samples).
        num_particles: Size of the particle axis (default ``first + num_coupled``). When every
            particle is coupled, the i.i.d. fallback comes from the base noise (no second draw).
        vimco: Refuse per-site estimators (``TraceARMS_IWAE(estimator='vimco')``).

    Attributes:
        shared: Per site, boolean ``[*coords]``: coordinates whose parameters are equal across
            the coupled particles (unbatched under the particle ``vmap``).
        lead: Per site, the coupled particles' logits ``[*coords(, K)]`` (unbatched; exact where
            ``shared``, the particles' maximum elsewhere), for the estimator's coefficients.
    """

    def __init__(
        self,
        fn: Any,
        key: jax.Array,
        config: EstimatorConfig,
        first: int = 0,
        num_coupled: int | None = None,
        num_particles: int | None = None,
        vimco: bool = False,
    ) -> None:
        super().__init__(fn)
        self._init_plans(config, vimco)
        self.key = key
        self.first = first
        self.num_coupled = config.num_samples if num_coupled is None else num_coupled
        total = first + self.num_coupled if num_particles is None else num_particles
        self.all_coupled = first == 0 and self.num_coupled == total
        self._counter = 0

    def process_message(self, msg: dict[str, Any]) -> None:  # noqa: D102
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        valued = "conditioned or substituted" if msg["value"] is not None else None
        planned = self.plan(msg, valued, unwrap)
        if planned is not None and planned[0].estimator.coupled:
            plan, site = planned
            rng_key = msg["kwargs"]["rng_key"]
            msg["value"] = self._draw(msg["name"], plan.estimator, site, msg["fn"], rng_key)

    def _draw(
        self,
        name: str,
        estimator: SiteEstimator,
        site: SiteDistribution,
        fn: Any,
        rng_key: jax.Array,
    ) -> jax.Array:
        """This particle's value: its row of the coupled draw where the parameters are shared."""
        index = lax.axis_index(PARTICLE_AXIS)
        in_range = (index >= self.first) & (index < self.first + self.num_coupled)
        logits = lax.stop_gradient(site.logits())
        dtype = logits.dtype
        site_key = random.fold_in(self.key, self._counter)
        self._counter += 1
        specs = estimator.noise_specs(self.num_coupled, site.coord_shape, site.num_categories)
        noise = tuple(
            _DRAW[spec.kind](random.fold_in(site_key, j), spec.shape, dtype)
            for j, spec in enumerate(specs)
        )
        coupled = estimator.coupling(noise)  # unbatched: computed once for all particles
        row = jnp.clip(index - self.first, 0, self.num_coupled - 1)

        def own_rows(arrays: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
            return tuple(
                lax.dynamic_index_in_dim(x, row if x.shape[0] > 1 else 0, keepdims=True)
                for x in arrays
            )

        z_coupled = estimator.sample(own_rows(coupled), logits)[0]
        # Shared parameters across the coupled particles? (jit-safe, per coordinate). The
        # reductions over the particle axis are unbatched under vmap, so ``hi`` doubles as the
        # coupled particles' common logits (exact wherever ``shared``) for the loss.
        if self.all_coupled:
            hi, lo = lax.pmax(logits, PARTICLE_AXIS), lax.pmin(logits, PARTICLE_AXIS)
        else:
            hi = lax.pmax(jnp.where(in_range, logits, -jnp.inf), PARTICLE_AXIS)
            lo = lax.pmin(jnp.where(in_range, logits, jnp.inf), PARTICLE_AXIS)
        shared = hi == lo
        if site.kind is DistKind.CATEGORICAL:
            shared = jnp.all(shared, axis=-1)
        independent = estimator.independent(noise) if self.all_coupled else None
        if independent is None:
            z_own = fn.sample(rng_key)
        else:
            # This particle's row of the i.i.d. base noise with its own parameters: an exact
            # i.i.d. sample where the parameters differ (no second random draw per site).
            value_dtype = jax.eval_shape(fn.sample, rng_key).dtype
            z_own = estimator.sample(own_rows(independent), logits)[0].astype(value_dtype)
        self.shared[name], self.lead[name] = shared, hi
        return jnp.where(shared & in_range, z_coupled.astype(z_own.dtype), z_own)
