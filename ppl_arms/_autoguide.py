"""Backend-neutral pieces of ``AutoMixedMeanField``: site kinds, choices and error messages."""

from __future__ import annotations

import enum

__all__ = ["INIT_LOGITS", "SiteKind", "check_init_logits", "unsupported_discrete_message"]

INIT_LOGITS = ("uniform", "prior")
"""Initialisations of the discrete sites' logits: all zeros, or the prototype prior's logits."""

LOGIT_CLIP = 10.0
"""Bound on initial logits taken from the prior (a prior probability of 0 or 1 has infinite logit)."""


class SiteKind(enum.StrEnum):
    """How ``AutoMixedMeanField`` parameterises a latent site."""

    CONTINUOUS = "continuous"
    """A Normal in unconstrained space, pushed through ``biject_to(support)`` (as ``AutoNormal``)."""
    BERNOULLI = "bernoulli"
    """Learnable logits, one per element, of a non-reparameterised Bernoulli."""
    CATEGORICAL = "categorical"
    """Learnable logits, a vector per element, of a non-reparameterised (one-hot) categorical."""


def check_init_logits(init_logits: str) -> None:
    """Raise a ``ValueError`` naming the valid choices if ``init_logits`` is unknown."""
    if init_logits not in INIT_LOGITS:
        options = ", ".join(repr(v) for v in INIT_LOGITS)
        raise ValueError(f"unknown init_logits {init_logits!r}; valid choices are {options}")


def unsupported_discrete_message(
    name: str, dist_name: str, backend: str, discrete_sites: list[str]
) -> str:
    """The error for a discrete latent site that the mean-field autoguide cannot parameterise.

    Args:
        name: The site name.
        dist_name: The innermost distribution's class name.
        backend: ``"pyro"`` or ``"numpyro"`` (the recipe differs in its ``block`` handler).
        discrete_sites: Every discrete latent site of the model (NumPyro's recipe hides them from
            the ``AutoGuideList`` itself).

    Returns:
        A message naming the site and the fix.
    """
    block = "poutine.block" if backend == "pyro" else "handlers.block"
    # NumPyro's AutoGuideList inspects its own model with continuous-only machinery, so there the
    # list itself must be built on a model whose discrete latent sites are hidden.
    outer = (
        "AutoGuideList(model)"
        if backend == "pyro"
        else f"AutoGuideList(handlers.block(model, hide={sorted(discrete_sites)!r}))"
    )
    return (
        f"site '{name}': AutoMixedMeanField parameterises Bernoulli and Categorical discrete "
        f"sites (and continuous sites), not {dist_name}. Write a guide for site '{name}' and "
        f"combine it with the autoguide: guide = {outer}; "
        f"guide.append(AutoMixedMeanField({block}(model, hide=['{name}']))); "
        f"guide.append(your_guide_for_{name})"
    )
