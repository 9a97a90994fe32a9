r"""The gradient of the learning signal with respect to a discrete site's sampled value (NumPyro).

The gradient-informed estimators (:mod:`ppl_arms.core.double_cv`, :mod:`ppl_arms.core.rodeo`)
take, per particle, :math:`g=\partial f/\partial z` at the sampled value :math:`z`, evaluated as a
float. :func:`sample_gradients` gets it, as described in :mod:`ppl_arms._sample_gradient`, from
:func:`jax.vjp`: for **one particle** it replays the guide (``replay`` + ``substitute`` + ``seed`` +
``trace``) with the chosen sites' values as floats, replays the model against that guide trace,
and differentiates the signal (every site's ``log_prob``, masked by its distribution's mask as
NumPyro's ``mask`` handler sets it, times ``site["scale"]``). It is a plain traceable function: the
losses call it inside their particle ``vmap`` and under ``jit``.

**Categorical sites: the one-hot route.** NumPyro (0.22) has no ``OneHotCategorical``, and an
integer ``Categorical`` value cannot carry a gradient. The route is: guide and model sample an
integer ``dist.Categorical`` (coupled by the losses as usual), and the model turns the value into a
one-hot vector through a ``deterministic`` site, by default named ``"{name}_one_hot"``
(:func:`one_hot_site_name`)::

    z = numpyro.sample("z", dist.Categorical(logits=prior_logits))
    z1h = numpyro.deterministic("z_one_hot", jax.nn.one_hot(z, K))
    ...  # use z1h (not z) wherever the value enters smoothly

The replay substitutes the one-hot float leaf for that deterministic site, and the site's own
terms :math:`\log p(z)`, :math:`\log q(z)` are taken in their linear form
:math:`\langle v,\log p\rangle` (:func:`linear_log_prob`). A categorical site without that
deterministic site gets zeros ``[*value_shape, K]`` and is reported as non-differentiable.

**Non-differentiable programs** (the value used only through indexing, comparisons or integer
operations) are detected structurally at trace time (the cotangent map of the rest of ``f`` does
not depend on its input, :func:`_unused_cotangents`), so it works under ``jit`` and ``vmap``. A
program that cannot run on a float value at all (it indexes with it, ``mu[z]``, or applies bitwise
operations: a ``TypeError`` or ``IndexError`` while tracing) is replayed with the recorded values
instead, and all its Bernoulli sites get their own terms only and are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Literal
from numpyro.distributions import Distribution
from numpyro.handlers import replay, seed, substitute, trace

from ppl_arms._docs import fill_doc
from ppl_arms._sample_gradient import (
    SAMPLE_GRADIENTS_DOC,
    SampleGradients,
    latent_sites,
    split_signal,
)
from ppl_arms._sample_gradient import linear_log_prob as _linear_log_prob
from ppl_arms.core.estimators import DistKind
from ppl_arms.numpyro._sites import unwrap
from ppl_arms.numpyro._trace import site_log_prob

__all__ = ["SampleGradients", "linear_log_prob", "one_hot_site_name", "sample_gradients"]


def one_hot_site_name(name: str) -> str:
    """The default name of the model's ``deterministic`` site holding site ``name``'s one-hot value."""
    return f"{name}_one_hot"


def linear_log_prob(fn: Distribution, value: jax.Array) -> jax.Array:
    r"""A NumPyro site's log-density in a form linear in the value, with stopped parameters.

    :func:`ppl_arms._sample_gradient.linear_log_prob` of the unwrapped distribution: Bernoulli
    :math:`z\,\ell`, categorical at a one-hot :math:`v`: :math:`\langle v,\log p\rangle`, through
    ``Independent`` (summed event dims), ``MaskedDistribution`` and ``ExpandedDistribution``
    wrappers.

    Args:
        fn: The site's distribution (Bernoulli or Categorical, possibly wrapped).
        value: A float value (Bernoulli) or one-hot float value ``[..., K]`` (Categorical).

    Returns:
        The linear form, of the site's ``log_prob`` shape.

    Raises:
        ValueError: For a distribution other than the wrappers over Bernoulli / Categorical.
    """
    info = unwrap(fn)
    if info.kind is DistKind.OTHER:
        raise ValueError(f"no linear log-density for a {type(fn).__name__} distribution")
    return _linear_log_prob(info, value)


def _unused_cotangents(linear_map: Callable[[jax.Array], Any], ct: jax.Array) -> Any:
    """Per output leaf of a linear map, whether it does not depend on the input (so is zero).

    A conservative dependency pass over the map's jaxpr: any equation with a dependent input makes
    all its outputs dependent, so ``True`` is only returned for outputs that are constants. A
    linear map's constant output is zero: the gradient has no path from the cost to that input.
    """
    closed, out_shape = jax.make_jaxpr(linear_map, return_shape=True)(ct)
    jaxpr = closed.jaxpr
    live = set(jaxpr.invars)
    for eqn in jaxpr.eqns:
        if any(not isinstance(v, Literal) and v in live for v in eqn.invars):
            live.update(eqn.outvars)
    unused = [isinstance(v, Literal) or v not in live for v in jaxpr.outvars]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), unused)


def _log_prob(site: dict, value: jax.Array) -> jax.Array:
    return jnp.sum(site_log_prob(site, value))


def _sample_sites(tr: dict) -> list[tuple[str, dict]]:
    return [(name, site) for name, site in tr.items() if site["type"] == "sample"]


def _scaled(site: dict, lp: jax.Array) -> jax.Array:
    if site["scale"] is not None:
        lp = site["scale"] * lp
    return jnp.sum(lp)


@fill_doc(FORMULA=SAMPLE_GRADIENTS_DOC)
def sample_gradients(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict,
    guide_trace: dict[str, dict[str, Any]],
    sites: Iterable[str],
    *,
    param_map: Mapping[str, jax.Array] | None = None,
    rng_key: jax.Array | None = None,
    one_hot_sites: Mapping[str, str] | None = None,
) -> SampleGradients:
    r"""For one particle, the gradient of the learning signal with respect to chosen sampled values.

    {FORMULA}

    One ``vjp`` of the replayed programs gives every site's gradient. Traceable: call it inside the loss's particle
    ``vmap`` (it then returns the per-particle gradients ``[P, ...]``) and under ``jit``; the
    ``nondifferentiable`` set is Python data decided at trace time, so collect it from inside the
    vmapped function (e.g. into a set in the enclosing scope) rather than returning it.

    Args:
        model: The model, with its plates seeded as in the particle run (``seed_plates``).
        guide: The guide, seeded the same way (without the coupling: every site is replayed).
        args: Positional arguments of model and guide.
        kwargs: Keyword arguments of model and guide.
        guide_trace: The particle's guide trace (its ``plate`` sites fix subsample indices).
        sites: Names of discrete guide sites (Bernoulli or Categorical, possibly under
            ``to_event``, ``.mask``, ``.expand``).
        param_map: Constrained parameter values substituted into both programs (the loss's).
        rng_key: Seeds whatever the replay does not fix (default ``PRNGKey(0)``).
        one_hot_sites: Per categorical site, the name of the model's ``deterministic`` site that
            holds its one-hot value (default :func:`one_hot_site_name`).

    Returns:
        :class:`SampleGradients`.

    Raises:
        ValueError: Naming the site, if it is not a latent sample site of ``guide_trace`` or its
            distribution is not Bernoulli / Categorical.
    """
    infos = latent_sites(sites, guide_trace, unwrap, "Categorical through the one-hot route")
    sites = list(infos)
    param_map = dict(param_map or {})
    one_hot_sites = dict(one_hot_sites or {})
    rng_key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    guide_key, model_key = jax.random.split(rng_key)
    dtype = jnp.result_type(float)
    leaves: dict[str, jax.Array] = {}
    deterministic: dict[str, str] = {}
    for name in sites:
        value = guide_trace[name]["value"]
        if infos[name].kind is DistKind.CATEGORICAL:
            k = infos[name].num_categories
            leaves[name] = jax.nn.one_hot(value, k, dtype=dtype)
            deterministic[name] = one_hot_sites.get(name, one_hot_site_name(name))
        else:
            leaves[name] = jnp.asarray(value, dtype=dtype)
    routed: dict[str, bool] = {}

    def costs_with(as_float: frozenset[str]) -> Callable:
        def costs(leaves: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
            floats = {name: leaves[name] for name in as_float}
            replay_trace = {
                **guide_trace,
                **{name: {**guide_trace[name], "value": v} for name, v in floats.items()},
            }
            guide_fn = substitute(replay(seed(guide, guide_key), replay_trace), data=param_map)
            new_guide = trace(guide_fn).get_trace(*args, **kwargs)
            data = {**param_map, **{det: leaves[name] for name, det in deterministic.items()}}
            model_fn = substitute(replay(seed(model, model_key), new_guide), data=data)
            new_model = trace(model_fn).get_trace(*args, **kwargs)
            for name, det in deterministic.items():
                routed[name] = new_model.get(det, {}).get("type") == "deterministic"

            def linear(site: dict, name: str) -> jax.Array:
                return _scaled(site, linear_log_prob(site["fn"], leaves[name]))

            programs = ((1.0, _sample_sites(new_model)), (-1.0, _sample_sites(new_guide)))
            zero = jnp.zeros((), dtype)
            rest, own = split_signal(programs, leaves, _log_prob, linear, zero)
            total = zero
            for term in own.values():
                total = total + term
            return rest, total

        return costs

    bernoulli = frozenset(name for name in sites if name not in deterministic)
    try:
        (rest, own), vjp = jax.vjp(costs_with(bernoulli), leaves)
    except (TypeError, IndexError):
        # A program that cannot run on float values (it indexes with one, or uses bitwise ops):
        # replay the recorded values; only the sites' own terms then carry a gradient.
        (rest, own), vjp = jax.vjp(costs_with(frozenset()), leaves)
    one, zero = jnp.ones_like(rest), jnp.zeros_like(own)
    (g_rest,) = vjp((one, zero))
    (g_own,) = vjp((zero, one))
    unused = _unused_cotangents(lambda c: vjp((c, zero))[0], one)
    df_dz = {}
    nondifferentiable = set()
    for name in sites:
        g = lax.stop_gradient(g_rest[name] + g_own[name])
        if unused[name] or not routed.get(name, True):
            nondifferentiable.add(name)
        if not routed.get(name, True):
            g = jnp.zeros_like(g)
        df_dz[name] = g
    return SampleGradients(df_dz, frozenset(nondifferentiable))
