"""Site shape checks that NumPyro's ``Trace_ELBO`` only warns about, as errors for our losses."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

from ppl_arms._checks import check_plate_dims as _check_site

__all__ = ["check_plate_dims"]


def check_plate_dims(which: str, tr: dict[str, Any]) -> None:
    """Raise at a site inside plates with a batch dimension > 1 left of all of its plates.

    See :func:`ppl_arms._checks.check_plate_dims`; sites outside every plate are not checked (as
    the host).

    Args:
        which: ``"model"`` or ``"guide"``, for the message.
        tr: The trace of one particle (no particle dimension in any shape).
    """
    for name, site in tr.items():
        if site["type"] != "sample" or not site["cond_indep_stack"]:
            continue
        fn = site["fn"]
        value_shape = jnp.shape(site["value"])
        value_batch = value_shape[: len(value_shape) - len(fn.event_shape)]
        batch = lax.broadcast_shapes(tuple(fn.batch_shape), value_batch)
        _check_site(which, name, batch, site["cond_indep_stack"])
