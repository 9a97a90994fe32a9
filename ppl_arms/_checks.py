"""Checks of traced programs shared by both adapters, so that a bad input gets the same error.

* :func:`check_guide_covers_model`: every latent of the model is sampled by the guide.
* :func:`check_signal_shape`: a site's learning signal fits its batch shape.
* :func:`check_plate_dims`: no batch dimension > 1 left of a site's plates.
* :func:`log_density_sums` and :func:`check_log_densities`: every log-density is finite.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from ppl_arms._records import Traces
from ppl_arms._typing import Array
from ppl_arms.config import log_density_error
from ppl_arms.core._ops import get_ops

__all__ = [
    "check_guide_covers_model",
    "check_log_densities",
    "check_plate_dims",
    "check_signal_shape",
    "log_density_labels",
    "log_density_sums",
]


def check_guide_covers_model(model_latents: Mapping[str, bool], guide: Collection[str]) -> None:
    """Raise if the model has a latent sample site that the guide does not sample.

    Args:
        model_latents: The model's unobserved sample sites, each with whether it is
            reparameterised (for the message).
        guide: The names of the guide's sites.
    """
    for name, reparameterized in model_latents.items():
        if name not in guide:
            kind = "continuous" if reparameterized else "discrete"
            raise ValueError(
                f"model site '{name}' is a {kind} latent variable that the guide does not sample; "
                "it would be drawn from the prior and bias the objective. Add a sample site "
                f"named '{name}' to the guide (or observe it in the model)."
            )


def check_signal_shape(name: str, signal: tuple[int, ...], batch: tuple[int, ...]) -> None:
    """Raise if a site's learning signal has more elements than the site (not broadcast-safe).

    Args:
        name: The site's name.
        signal: The shape of its learning signal.
        batch: Its batch shape (the particle plate first, where the host has one).
    """
    if np.broadcast_shapes(signal, batch) != batch:
        raise ValueError(
            f"the learning signal of site '{name}' has shape {signal}, which does not "
            f"fit the site's batch shape {batch} (particle plate first): some log-density of the "
            "model or guide has more batch dims than its plates. Vectorised particles need "
            "broadcast-safe programs, e.g. no keepdim=True sums that turn a per-particle value "
            "of shape (n, 1) into (n, 1, 1) and then broadcast against (n, B) to (n, n, B)."
        )


def check_plate_dims(which: str, name: str, batch: tuple[int, ...], frames: Sequence[Any]) -> None:
    """Raise at a site inside plates with a batch dimension > 1 left of all of its plates.

    NumPyro's ``Trace_ELBO`` only warns here ("Missing a plate statement") and sums the site whole.
    Our losses give each plate element its own learning signal, and an undeclared dimension makes
    those signals the wrong shape (an obscure broadcasting error, or a signal misaligned with the
    site's elements), so it is an error, as in Pyro (``invalid log_prob shape``). As Pyro's
    ``check_site_shape``, dimensions right of the site's leftmost plate that no plate declares are
    allowed (e.g. data indexed by a plate the site is not in).

    Args:
        which: ``"model"`` or ``"guide"``, for the message.
        name: The site's name.
        batch: Its batch shape (of one particle: no particle dimension).
        frames: Its plates (with ``name`` and negative ``dim``); none: nothing is checked.
    """
    if not frames:
        return
    plates = ", ".join(f"'{f.name}' (dim={f.dim})" for f in frames)
    for dim in range(-len(batch), min(f.dim for f in frames)):
        if batch[dim] > 1:
            raise ValueError(
                f"{which} site '{name}' has batch shape {batch}, whose dimension {dim} (size "
                f"{batch[dim]}) belongs to none of its plates {plates}: a missing plate "
                "statement. Add a plate for that dimension, move it into the event shape "
                "with .to_event(...), or fix the shapes of the distribution's parameters "
                "(numpyro.util.format_shapes shows every site's shape)."
            )


def log_density_labels(traces: Traces) -> tuple[str, ...]:
    """The sites of :func:`log_density_sums`, as ``"model site 'x'"``, ``"guide site 'z'"``."""
    return tuple(f"model site '{s.name}'" for s in traces.model) + tuple(
        f"guide site '{s.name}'" for s in traces.guide
    )


def log_density_sums(traces: Traces) -> Array | None:
    """Each site's summed log-density (detached), model sites first: ``[S]`` (``None``: none)."""
    sums = [get_ops(s.log_prob).sum(s.log_prob) for s in (*traces.model, *traces.guide)]
    if not sums:
        return None
    ops = get_ops(*sums)
    return ops.stop_gradient(ops.stack(sums, axis=0))


def check_log_densities(labels: Sequence[str], sums: np.ndarray) -> None:
    """Raise :func:`~ppl_arms.config.log_density_error` for the first site with a non-finite sum.

    Args:
        labels: The sites (:func:`log_density_labels`).
        sums: Concrete :func:`log_density_sums` ``[..., S]`` (e.g. one row per particle).
    """
    if np.isfinite(sums).all():
        return
    for i, label in enumerate(labels):
        bad = sums[..., i][~np.isfinite(sums[..., i])]
        if bad.size:
            raise log_density_error(label, -math.inf if np.any(bad == -np.inf) else float(bad[0]))
