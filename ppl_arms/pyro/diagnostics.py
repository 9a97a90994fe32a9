"""``gradient_variance``: R independent gradient estimates of a Pyro loss, summarised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppl_arms.diagnostics import (
    GradientVarianceTable,
    check_num_estimates,
    gradient_table,
    parameter_sites,
)

__all__ = ["gradient_variance"]


def _backward(loss: Any, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> None:
    if hasattr(loss, "loss_and_grads"):
        loss.loss_and_grads(model, guide, *args, **kwargs)
    else:
        loss(model, guide, *args, **kwargs).backward()


def _site_dependencies(
    guide: Callable, params: dict[str, torch.Tensor], args: tuple, kwargs: dict
) -> dict[str, tuple[str, ...]]:
    """Parameter name -> guide sites whose log-density or value depends on it (by autograd).

    A discrete value is drawn without gradient, so only its distribution counts; a reparameterised
    value (such as an autoguide's ``Delta`` site) counts through its value too.
    """
    with poutine.trace() as tape:
        guide(*args, **kwargs)
    names = list(params)
    leaves = [params[p] for p in names]
    site_params = {}
    for name, site in tape.trace.nodes.items():
        if (
            site["type"] != "sample"
            or site["is_observed"]
            or site_is_subsample(site)
            or site["infer"].get("is_auxiliary")
        ):
            continue
        target = site["fn"].log_prob(site["value"]).sum()
        if torch.is_tensor(site["value"]) and site["value"].requires_grad:
            target = target + site["value"].sum()
        if target.requires_grad:
            grads = torch.autograd.grad(target, leaves, allow_unused=True, retain_graph=True)
            site_params[name] = [p for p, g in zip(names, grads, strict=True) if g is not None]
    return parameter_sites(site_params, names)


def gradient_variance(
    loss: Any,
    model: Callable,
    guide: Callable,
    *args: Any,
    num_estimates: int = 100,
    **kwargs: Any,
) -> GradientVarianceTable:
    r"""Mean, variance and signal-to-noise ratio of ``num_estimates`` gradient estimates.

    The parameters are the current values in Pyro's param store (including
    :class:`~pyro.nn.PyroModule` parameters such as an autoguide's); set them first to evaluate the
    estimator elsewhere. Each estimate is one call of ``loss.loss_and_grads(model, guide, *args)``
    (so any Pyro ELBO works, including :class:`~pyro.infer.TraceGraph_ELBO`, which has no
    ``differentiable_loss``), read from the **unconstrained** parameters' ``.grad``, as
    :class:`pyro.infer.SVI` sees it. Draws use Pyro's global RNG (``pyro.set_rng_seed``). The
    parameters' ``.grad`` are restored afterwards; parameter values are never changed.

    Args:
        loss: A Pyro ELBO, or a callable ``loss(model, guide, *args, **kwargs)`` returning a
            differentiable tensor.
        model: The model.
        guide: The guide.
        *args: The model's arguments.
        num_estimates: ``R >= 2``.
        **kwargs: The model's keyword arguments.

    Returns:
        A :class:`~ppl_arms.diagnostics.GradientVarianceTable` with a row per parameter; each row's
        ``sites`` lists the guide sites whose distribution depends on it.

    Example::

        table = gradient_variance(TraceARMS_ELBO(4), model, guide, x, num_estimates=200)
        print(table)
        table.total_variance
    """
    check_num_estimates(num_estimates)
    with poutine.trace(param_only=True) as capture:
        evaluate = getattr(loss, "loss", None)
        if evaluate is not None:
            evaluate(model, guide, *args, **kwargs)
        else:
            with torch.no_grad():
                loss(model, guide, *args, **kwargs)
    params = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
    if not params:
        raise ValueError("no parameters: the model and guide have no param sites")
    saved = {name: p.grad for name, p in params.items()}
    grads: dict[str, list[torch.Tensor]] = {name: [] for name in params}
    try:
        for _ in range(num_estimates):
            for p in params.values():
                p.grad = None
            _backward(loss, model, guide, args, kwargs)
            for name, p in params.items():
                g = torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                grads[name].append(g)
    finally:
        for name, p in params.items():
            p.grad = saved[name]
    stacked = {name: torch.stack(g).cpu().numpy() for name, g in grads.items()}
    sites = _site_dependencies(guide, params, args, kwargs)
    return gradient_table(stacked, sites, repr(loss))
