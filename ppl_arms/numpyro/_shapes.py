"""Site shape checks that NumPyro's ``Trace_ELBO`` only warns about, as errors for our losses."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

__all__ = ["check_plate_dims"]


def check_plate_dims(which: str, tr: dict[str, Any]) -> None:
    """Raise at a site inside plates with a batch dimension > 1 left of all of its plates.

    NumPyro's ``Trace_ELBO`` warns here ("Missing a plate statement", ``_validate_model`` with
    ``plate_warning="loose"``) and sums the site whole. Our losses give each plate element its own
    learning signal, and an undeclared dimension makes those signals the wrong shape (an obscure
    broadcasting error, or a signal misaligned with the site's elements), so it is an error, as in
    Pyro (``invalid log_prob shape``). Sites outside every plate are not checked (as the host).

    Args:
        which: ``"model"`` or ``"guide"``, for the message.
        tr: The trace of one particle (no particle dimension in any shape).
    """
    for name, site in tr.items():
        if site["type"] != "sample" or not site["cond_indep_stack"]:
            continue
        fn = site["fn"]
        value_shape = jnp.shape(site["value"])
        batch = lax.broadcast_shapes(
            tuple(fn.batch_shape), value_shape[: len(value_shape) - len(fn.event_shape)]
        )
        plate_dims = [f.dim for f in site["cond_indep_stack"]]
        plates = ", ".join(f"'{f.name}' (dim={f.dim})" for f in site["cond_indep_stack"])
        # As Pyro's check_site_shape: dimensions right of the site's leftmost plate that no plate
        # declares are allowed (e.g. data indexed by a plate the site is not in).
        for dim in range(-len(batch), min(plate_dims)):
            if batch[dim] > 1:
                raise ValueError(
                    f"{which} site '{name}' has batch shape {batch}, whose dimension {dim} (size "
                    f"{batch[dim]}) belongs to none of its plates {plates}: a missing plate "
                    "statement. Add a plate for that dimension, move it into the event shape "
                    "with .to_event(...), or fix the shapes of the distribution's parameters "
                    "(numpyro.util.format_shapes shows every site's shape)."
                )
