"""Backend-neutral half of ``to_inference_data``: site structure to ArviZ dims/coords and groups.

The backends draw the samples and describe every model site by a :class:`SiteInfo` (per-draw shape,
event dims, plates). This module names the dimensions (plate name for a plate's axis, ArviZ's own
``"{site}_dim_{i}"`` elsewhere), builds the coordinates (``0 .. size - 1`` per plate, unless given)
and assembles the :class:`arviz.InferenceData`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "LOSS_DIM",
    "LOSS_GROUP",
    "PlateInfo",
    "SiteInfo",
    "build_inference_data",
    "site_dims",
]

LOSS_GROUP = "svi"
"""Name of the :class:`arviz.InferenceData` group holding the optimisation trace."""

LOSS_DIM = "svi_step"
"""Dimension of the loss trace (one entry per optimisation step)."""


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
    """

    name: str
    shape: tuple[int, ...]
    event_dim: int
    plates: tuple[PlateInfo, ...] = field(default=())


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
