"""The coupling handler: draws the n coupled values of each discrete guide site at once.

It wraps the *vectorised* guide (outside Pyro's ``num_particles_vectorized`` plate), so at each site
it sees the fully broadcast distribution with the particle dimension first, after the guide's own
plates, masks, scales and ``infer_config``. At a discrete site with a coupled estimator it draws
the ``n`` values jointly from base noise (Pyro's global torch RNG, so ``pyro.set_rng_seed`` makes
it reproducible). Where the site's parameters differ across particles (they depend on upstream
per-particle samples), those coordinates take an i.i.d. draw instead (each particle's row of the
i.i.d. base noise with its own parameters) and the loss uses LOORF. When the parameters are
broadcast along the particle plate (stride 0, the usual case: they do not depend on per-particle
samples), they are shared by construction, and nothing is compared or drawn twice.
"""

from __future__ import annotations

from typing import Any

import torch
from pyro.ops.provenance import detach_provenance
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from ppl_arms._planning import PlannedSites
from ppl_arms.config import EstimatorConfig
from ppl_arms.core.copulas import NoiseKind
from ppl_arms.core.estimators import DistKind, SiteEstimator
from ppl_arms.pyro._sites import SiteDistribution, unwrap

__all__ = ["PARTICLE_PLATE", "Coupling"]

PARTICLE_PLATE = "num_particles_vectorized"
"""Name of Pyro's particle plate (``ELBO._vectorized_num_particles``)."""

_DRAW = {NoiseKind.NORMAL: torch.randn, NoiseKind.UNIFORM: torch.rand}


class Coupling(PlannedSites, Messenger):
    """Draw coupled values at the discrete sites of a vectorised guide.

    Args:
        config: The loss's estimator configuration.
        first: Index of the first coupled particle.
        num_coupled: Number of coupled particles; particles outside
            ``first .. first + num_coupled - 1`` keep Pyro's i.i.d. draws (the IWAE bound's own).
        num_particles: Size of the particle plate.
        vimco: Refuse per-site estimators (``TraceARMS_IWAE(estimator='vimco')``).

    Attributes:
        shared: Per site whose parameters are not broadcast along the particle plate, boolean
            ``[*coords]``: coordinates whose parameters are equal across the coupled particles.
    """

    def __init__(
        self,
        config: EstimatorConfig,
        first: int,
        num_coupled: int,
        num_particles: int,
        vimco: bool = False,
    ) -> None:
        super().__init__()
        self._init_plans(config, vimco)
        self.first = first
        self.num_coupled = num_coupled
        self.num_particles = num_particles

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["is_observed"] or isinstance(msg["fn"], _Subsample):
            return
        name, fn = msg["name"], msg["fn"]
        valued = "conditioned or replayed" if msg["value"] is not None or msg["done"] else None
        planned = self.plan(msg, valued, lambda d: self._unwrap(name, d, msg))
        if planned is not None and planned[0].estimator.coupled:
            plan, site = planned
            with torch.no_grad():
                msg["value"] = site.to_value(self._draw(name, plan.estimator, site, fn))

    def _unwrap(self, name: str, fn: Any, msg: dict[str, Any]) -> SiteDistribution:
        site = unwrap(fn, msg.get("mask"))
        if not site.coord_shape or site.coord_shape[0] != self.num_particles:
            raise ValueError(
                f"site '{name}' has shape {site.coord_shape}, whose leading dimension is not the "
                f"particle plate of size {self.num_particles}; set max_plate_nesting to the "
                "number of plates of the model (or leave it unset to have it guessed)"
            )
        return site

    def _draw(
        self, name: str, estimator: SiteEstimator, site: SiteDistribution, fn: Any
    ) -> torch.Tensor:
        """The coordinates of all particles: coupled where the parameters are shared."""
        lo, hi = self.first, self.first + self.num_coupled
        logits = detach_provenance(site.logits()).detach()
        part = logits[lo:hi]
        # Parameters broadcast along the particle plate (stride 0) are identical across
        # particles by construction: no comparison and no i.i.d. fallback are needed.
        structural = part.stride(0) == 0
        specs = estimator.noise_specs(self.num_coupled, site.coord_shape[1:], site.num_categories)
        noise = tuple(
            _DRAW[s.kind](s.shape, dtype=logits.dtype, device=logits.device) for s in specs
        )
        z = estimator.sample(estimator.coupling(noise), part[0])
        all_coupled = self.num_coupled == self.num_particles
        independent = None if structural else estimator.independent(noise)
        if structural and all_coupled:
            return z
        if independent is not None and all_coupled:
            shared = self.shared[name] = _shared(part, site.kind)
            # Row i of the (i.i.d.) base noise with particle i's own parameters: an exact
            # i.i.d. sample where the parameters differ (no second random draw).
            own = estimator.sample(tuple(u.unsqueeze(0) for u in independent), part)[0]
            return torch.where(shared, z.to(own.dtype), own)
        coords = site.coordinates(detach_provenance(fn.sample())).clone()
        if structural:
            coords[lo:hi] = z.to(coords.dtype)
        else:
            shared = self.shared[name] = _shared(part, site.kind)
            coords[lo:hi] = torch.where(shared, z.to(coords.dtype), coords[lo:hi])
        return coords


def _shared(part: torch.Tensor, kind: DistKind) -> torch.Tensor:
    """Coordinates whose parameters are equal across the particles of ``part`` (no host sync)."""
    shared = (part == part[:1]).all(0)
    return shared.all(-1) if kind is DistKind.CATEGORICAL else shared
