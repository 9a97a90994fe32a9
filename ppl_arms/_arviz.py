"""Backend-neutral half of ``to_inference_data``: site structure to ArviZ dims/coords and groups.

The backends describe every model site by a :class:`SiteInfo` (role, per-draw shape, event dims,
plates), ask :func:`plan_draws` which sites each draw must return, draw them, and hand the draws to
:func:`assemble`. This module checks that the guide covers the model's latent sites, names the
dimensions (plate name for a plate's axis, ArviZ's own ``"{site}_dim_{i}"`` elsewhere), builds the
coordinates (``0 .. size - 1`` per plate, unless given) and assembles the
:class:`arviz.InferenceData`.
"""

from __future__ import annotations

import enum
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "GROUPS_DOC",
    "LOSS_DIM",
    "LOSS_GROUP",
    "DrawPlan",
    "PlateInfo",
    "SiteInfo",
    "SiteRole",
    "assemble",
    "build_inference_data",
    "check_num_samples",
    "plan_draws",
    "site_dims",
]

LOSS_GROUP = "svi"
"""Name of the :class:`arviz.InferenceData` group holding the optimisation trace."""

LOSS_DIM = "svi_step"
"""Dimension of the loss trace (one entry per optimisation step)."""


GROUPS_DOC = """
* ``posterior``: the model's latent sample sites and deterministic sites, one chain of
  ``num_samples`` draws (the draws are independent: use ``az.summary(idata, kind="stats")``,
  since chain diagnostics such as R-hat do not apply);
* ``posterior_predictive`` (if requested): the observed sites, re-drawn from the model;
* ``observed_data``: the observed values;
* ``svi`` (if ``losses`` is given): variable ``loss`` over dimension ``svi_step``.

A plate's axis is named after the plate, with coordinates ``0 .. size - 1`` (override them with
``coords``, e.g. feature names); other axes get ArviZ's ``"{site}_dim_{i}"``.
"""
"""The groups and dimensions of both adapters' ``to_inference_data`` (its ``{GROUPS}`` line)."""


class SiteRole(enum.Enum):
    """What a model site is, for the groups it goes to."""

    LATENT = "latent"
    """Sampled by the guide: ``posterior``."""
    OBSERVED = "observed"
    """Conditioned on data: ``observed_data`` (and ``posterior_predictive`` when re-drawn)."""
    DETERMINISTIC = "deterministic"
    """A deterministic function of the others: ``posterior``."""

    @classmethod
    def of(cls, observed: bool, deterministic: bool) -> SiteRole:
        """The role of a site that is (or not) observed or deterministic (deterministic first)."""
        if deterministic:
            return cls.DETERMINISTIC
        return cls.OBSERVED if observed else cls.LATENT


@dataclass(frozen=True)
class PlateInfo:
    """A plate enclosing a site: its name, its (negative) batch dim and its full size."""

    name: str
    dim: int
    size: int


@dataclass(frozen=True)
class SiteInfo:
    """What ``to_inference_data`` needs to know about one model site.

    Attributes:
        name: The site name.
        shape: Shape of one draw.
        event_dim: Number of rightmost event dims (plates index the batch dims to their left).
        plates: The plates the site is in.
        role: Whether it is latent, observed or deterministic.
    """

    name: str
    shape: tuple[int, ...]
    event_dim: int
    plates: tuple[PlateInfo, ...] = field(default=())
    role: SiteRole = SiteRole.LATENT


def check_num_samples(num_samples: int) -> None:
    """Raise a ``ValueError`` unless ``num_samples >= 1``."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")


@dataclass(frozen=True)
class DrawPlan:
    """Which sites go to which group, and which sites each draw returns.

    Attributes:
        posterior: The latent and deterministic sites, in trace order.
        observed: The observed sites, in trace order.
        predictive: Whether the observed sites are re-drawn (``posterior_predictive``).
    """

    posterior: tuple[str, ...]
    observed: tuple[str, ...]
    predictive: bool

    @property
    def returned(self) -> tuple[str, ...]:
        """The sites each draw returns."""
        return self.posterior + (self.observed if self.predictive else ())


def plan_draws(
    sites: Mapping[str, SiteInfo], guide_sites: Container[str], posterior_predictive: bool
) -> DrawPlan:
    """Split the model's sites into the groups, after checking that the guide samples every latent.

    Args:
        sites: Every model site, in trace order.
        guide_sites: The names of the guide's sites.
        posterior_predictive: Whether the observed sites are to be re-drawn.

    Raises:
        ValueError: Naming the latent model sites that the guide does not sample (their draws would
            come from the prior).
    """
    missing = [k for k, s in sites.items() if s.role is SiteRole.LATENT and k not in guide_sites]
    if missing:
        raise ValueError(
            f"model sites {missing} are latent but the guide does not sample them; "
            "their draws would come from the prior. Add them to the guide."
        )
    observed = tuple(k for k, s in sites.items() if s.role is SiteRole.OBSERVED)
    posterior = tuple(k for k in sites if k not in observed)
    return DrawPlan(posterior, observed, posterior_predictive)


def site_dims(site: SiteInfo) -> list[str]:
    """Dimension names of one draw of ``site``: plate names where a plate indexes an axis.

    A plate at batch dim ``d`` (negative) indexes axis ``ndim + d - event_dim`` of the value. An
    axis whose length is not the plate's full size (a broadcast axis) keeps ArviZ's default name
    ``"{site}_dim_{i}"``.
    """
    ndim = len(site.shape)
    dims = [f"{site.name}_dim_{i}" for i in range(ndim)]
    for plate in site.plates:
        axis = ndim + plate.dim - site.event_dim
        if 0 <= axis < ndim and site.shape[axis] == plate.size:
            dims[axis] = plate.name
    return dims


def _with_chain(draws: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value)[None] for name, value in draws.items()}


def build_inference_data(
    sites: Mapping[str, SiteInfo],
    posterior: Mapping[str, Any],
    posterior_predictive: Mapping[str, Any] | None = None,
    observed_data: Mapping[str, Any] | None = None,
    losses: Sequence[float] | np.ndarray | None = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Any:
    """Assemble an :class:`arviz.InferenceData` from draws (one chain) and site structure.

    Args:
        sites: Structure of every site that appears in the groups below.
        posterior: Draws ``[num_draws, *shape]`` of latent and deterministic sites.
        posterior_predictive: Draws ``[num_draws, *shape]`` of observed sites, or ``None``.
        observed_data: The observed values ``[*shape]``, or ``None``.
        losses: The loss per optimisation step, stored as variable ``"loss"`` over dim
            :data:`LOSS_DIM` in the group :data:`LOSS_GROUP`; ``None`` stores nothing.
        coords: Coordinates that replace the default ``0 .. size - 1`` of a dimension (e.g.
            ``{"predictors": feature_names}``).
        dims: Dimension names that replace the inferred ones of a site.
        attrs: Attributes of every group (e.g. the inference library).

    Returns:
        The :class:`arviz.InferenceData`.
    """
    import arviz as az
    import xarray as xr

    all_dims = {name: site_dims(site) for name, site in sites.items()}
    all_dims.update({name: list(d) for name, d in (dims or {}).items()})
    all_coords: dict[str, Any] = {}
    for site in sites.values():
        for plate in site.plates:
            all_coords.setdefault(plate.name, np.arange(plate.size))
    all_coords.update(dict(coords or {}))

    def used(group: Mapping[str, Any] | None) -> dict[str, list[str]]:
        return {k: all_dims[k] for k in group or {}}

    group_dims = {**used(posterior), **used(posterior_predictive), **used(observed_data)}
    names = {d for ds in group_dims.values() for d in ds}
    idata = az.from_dict(
        posterior=_with_chain(posterior),
        posterior_predictive=_with_chain(posterior_predictive) if posterior_predictive else None,
        observed_data={k: np.asarray(v) for k, v in (observed_data or {}).items()} or None,
        coords={k: v for k, v in all_coords.items() if k in names},
        dims=group_dims,
    )
    for group in idata.groups():
        idata[group].attrs.update(dict(attrs or {}))
    if losses is not None:
        values = np.asarray(losses, dtype=float).reshape(-1)
        loss = xr.Dataset(
            {"loss": ((LOSS_DIM,), values)},
            coords={LOSS_DIM: np.arange(values.size)},
            attrs=dict(attrs or {}),
        )
        idata.add_groups({LOSS_GROUP: loss})
    return idata


def assemble(
    sites: Mapping[str, SiteInfo],
    plan: DrawPlan,
    draws: Mapping[str, Any],
    observed_data: Mapping[str, Any],
    guide: Any,
    library: str,
    losses: Sequence[float] | np.ndarray | None = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
) -> Any:
    """The :class:`arviz.InferenceData` of one adapter's ``to_inference_data``.

    Args:
        sites: Every model site.
        plan: The groups, from :func:`plan_draws`.
        draws: Stacked draws ``[num_draws, *shape]`` of the sites of ``plan.returned``.
        observed_data: The observed values ``[*shape]`` of ``plan.observed``.
        guide: The guide (its name is stored as the attribute ``"guide"``).
        library: The host library (the attribute ``"inference_library"``).
        losses: As in :func:`build_inference_data`.
        coords: As in :func:`build_inference_data`.
        dims: As in :func:`build_inference_data`.

    Returns:
        The :class:`arviz.InferenceData`.
    """
    draws = {k: np.asarray(v) for k, v in draws.items()}
    return build_inference_data(
        sites,
        posterior={k: draws[k] for k in plan.posterior},
        posterior_predictive={k: draws[k] for k in plan.observed} if plan.predictive else None,
        observed_data={k: np.asarray(v) for k, v in observed_data.items()},
        losses=losses,
        coords=coords,
        dims=dims,
        attrs={
            "inference_library": library,
            "guide": getattr(guide, "__name__", type(guide).__name__),
        },
    )
