"""The Bayesian main job: accuracy against wall-clock time, ours against MCMC and enumeration.

Run ``python -m benchmarks.bayes`` (about 25 minutes with ``--cap-scale 0.5`` on 2 heavily shared
cores before ``logreg-cancer-p30`` was added; that workload alone took 452 s at full caps, 135 s
of it for its reference; ``--quick``: three small workloads, a few minutes there, most of it JIT
compilation; ``--merge`` adds the workloads run to an existing ``bayes.json``). Every method of
every workload runs under a wall-clock cap and records its accuracy against a reference answer
that no method under test produced, at checkpoints (the time spent computing the accuracy is
excluded from the clock; compilation and warm-up are included):

* ``linreg-*``: spike-and-slab linear regression (:mod:`models.bayesian.sparse_regression`, known
  noise scale): mean absolute error of the posterior inclusion probabilities (PIPs) against the
  closed form (orthogonal designs, any ``p``), the enumeration of all ``2**p`` models
  (correlated, ``p = 20``) or long collapsed Gibbs chains (correlated, ``p = 200``; several
  chains, split-R-hat in the JSON), and AUROC of the PIPs for the true support;
* ``logreg-cancer-p30``: spike-and-slab logistic regression on scikit-learn's breast-cancer data
  (:mod:`models.bayesian.logistic_selection`, 30 standardised features, non-conjugate): mean
  absolute PIP error against a long Pólya-Gamma Gibbs reference (coefficients integrated out,
  several chains, split-R-hat in the JSON), a sampler no benchmarked method runs;
* ``mixture-*``: the Gaussian mixture (:mod:`models.bayesian.gaussian_mixture`): adjusted Rand
  index (ARI) of the plug-in assignments to the true labels, time per step and the final loss;
* ``changepoint-*``: the change-point model (:mod:`models.bayesian.change_point`): total
  variation distance of the change time's posterior to the exact one.

Methods: ``arms-guide`` / ``loorf-guide`` (our ``TraceARMS_ELBO`` with a hand-written guide;
``-n32``: with 32 particles instead of 4, at ``p >= 200``),
``arms-mf`` / ``loorf-mf`` (ours with ``AutoMixedMeanField``), ``arms-mixture`` /
``loorf-mixture`` / ``loorf-lowrank`` (ours with a structured guide; logistic regression only),
``dhmcgibbs`` (NumPyro's ``DiscreteHMCGibbs`` around NUTS), ``mixedhmc`` (NumPyro's
``MixedHMC``), ``traceenum`` (NumPyro's ``TraceEnum_ELBO`` with ``funsor``, discrete sites summed
out, ``AutoNormal`` on the rest). It prints a table and writes ``bayes.json`` (every curve, the command, the versions),
``bayes.md`` and one PNG per workload family.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._precision import float32, jax_x64

__all__ = ["QUICK_WORKLOADS", "WORKLOADS", "main", "merge", "run", "table"]


# -- workloads --------------------------------------------------------------------------------


@dataclass
class Workload:
    """One problem: its data, reference, metric and the methods that apply."""

    name: str
    family: str
    metric: str
    target: float
    higher_is_better: bool
    methods: tuple[str, ...]
    caps: dict[str, float]
    describe: str
    build: Callable[[], dict[str, Any]]
    sizes: dict[str, Any] = field(default_factory=dict)


def _linreg(n: int, p: int, design: str, quick: bool) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        from models.bayesian import sparse_regression as sr

        prior = sr.SparsePrior()
        data = sr.make_data(n, p, design, signal_fraction=0.2, seed=p)
        t = time.perf_counter()
        chains: dict[str, Any] = {}
        if design == "orthogonal":
            ref = sr.orthogonal_inclusion_probabilities(data.x, data.y, prior)
            how = "closed form (orthogonal design, known noise)"
        elif p <= ENUMERATION_MAX_P:
            ref = sr.enumerated_inclusion_probabilities(data.x, data.y, prior)
            how = f"enumeration of all 2^{p} models"
        else:
            # quick: a short, unconverged reference that only exercises the code path
            size = (
                {"num_chains": 2, "num_sweeps": 200, "warmup": 20} if quick else _LINREG_REFERENCE
            )
            chains = sr.collapsed_gibbs_reference(
                data.x, data.y, prior, seed=_REFERENCE_SEED, **size
            )
            ref = chains.pop("pips")
            chains.pop("seconds")
            chains["seed"] = _REFERENCE_SEED
            how = "collapsed Gibbs (coefficients integrated out), Rao-Blackwellised PIPs"
        return {
            "data": data,
            "prior": prior,
            "reference": ref,
            "reference_info": {
                "how": how,
                **chains,
                "seconds": time.perf_counter() - t,
                "error_of_prior_guess": float(np.abs(ref - prior.inclusion_prob).mean()),
                "error_of_zero_guess": float(np.abs(ref).mean()),
                "auroc": _auroc(ref, data.true_coef != 0),
            },
        }

    return build


def _logreg(quick: bool) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        from models.bayesian import logistic_selection as ls

        prior = ls.LogisticPrior()
        data = ls.load_breast_cancer_data()
        # quick: a short, unconverged reference that only exercises the code path
        size = {"num_chains": 2, "num_sweeps": 300, "warmup": 50} if quick else _LOGREG_REFERENCE
        ref = ls.polya_gamma_reference(data.x, data.y, prior, seed=_REFERENCE_SEED, **size)
        pips = ref.pop("pips")
        return {
            "data": data,
            "prior": prior,
            "reference": pips,
            "reference_info": {
                "how": "Polya-Gamma Gibbs, coefficients integrated out, Rao-Blackwellised PIPs",
                **ref,
                "seed": _REFERENCE_SEED,
                "pips": pips.round(4).tolist(),
                "error_of_prior_guess": float(np.abs(pips - prior.inclusion_prob).mean()),
                "error_of_zero_guess": float(np.abs(pips).mean()),
            },
        }

    return build


ENUMERATION_MAX_P = 20
"""Largest ``p`` of a correlated design whose reference enumerates all ``2**p`` models."""

_LINREG_REFERENCE = {"num_chains": 4, "num_sweeps": 10_000, "warmup": 1_000}
"""Size of the correlated-design reference for ``p > ENUMERATION_MAX_P`` (collapsed Gibbs)."""

_LOGREG_REFERENCE = {"num_chains": 4, "num_sweeps": 12_000, "warmup": 1_000}
"""Size of the full run's logistic-regression reference (Pólya-Gamma Gibbs chains)."""

_REFERENCE_SEED = 12_345
"""Seed of the reference chains (the benchmarked methods use ``--seed``, default 0)."""


def _mixture(n: int, k: int, quick: bool) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        from sklearn.metrics import adjusted_rand_score

        from models.bayesian import gaussian_mixture as gm

        rng = np.random.default_rng(k)
        angles = 2 * np.pi * np.arange(k) / k
        radius = 2.0 if k <= 3 else 4.0
        locs = np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)
        data = gm.make_synthetic_data(
            n, tuple(map(tuple, locs)), 0.5, tuple(np.full(k, 1 / k)), seed=k
        )
        eval_idx = rng.choice(n, size=min(n, 10_000), replace=False)
        truth_pred = _responsibilities(
            data.x[eval_idx], np.full(k, 1 / k), data.true_locs, np.full((k, 2), 0.5)
        ).argmax(1)
        return {
            "data": data,
            "prior": gm.MixturePrior(num_components=k),
            "eval_idx": eval_idx,
            "reference_info": {
                "how": "true labels (ARI); true-parameter Bayes classifier as the ceiling",
                "ceiling_ari": float(adjusted_rand_score(data.labels[eval_idx], truth_pred)),
            },
        }

    return build


def _changepoint(t_len: int, quick: bool) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        from models.bayesian import change_point as cp

        data = cp.make_synthetic_data(t_len, tau=int(0.4 * t_len), rates=(3.0, 2.5), seed=1)
        prior = cp.ChangePointPrior()
        exact = cp.exact_posterior(data.counts, prior)
        return {
            "data": data,
            "prior": prior,
            "reference": exact.probs,
            "reference_info": {
                "how": "exact enumeration of the T positions (Gamma-Poisson conjugacy)",
                "posterior_mean_tau": exact.mean,
                "posterior_max_prob": float(exact.probs.max()),
            },
        }

    return build


def _workloads(quick: bool) -> dict[str, Workload]:
    lin = ("arms-guide", "loorf-guide", "arms-mf", "dhmcgibbs", "mixedhmc")
    s = 0.25 if quick else 1.0
    out: dict[str, Workload] = {}
    for n, p, design, cap in [
        (500, 20, "orthogonal", 10),
        (500, 200, "orthogonal", 20),
        (2000, 2000, "orthogonal", 60),
        (500, 20, "correlated", 10),
        (500, 200, "correlated", 20),
    ]:
        if quick and p > 200:
            continue
        name = f"linreg-{design[:4]}-p{p}"
        methods = lin if p < 200 else (*lin[:2], *MANY_PARTICLES, *lin[2:])
        if p > 200:
            methods = tuple(m for m in methods if m != "mixedhmc")
        caps = {m: cap * s for m in methods}
        if p > 200:  # ours is far faster here; keep the run short
            caps.update({m: 20.0 * s for m in methods if m != "dhmcgibbs"})
        out[name] = Workload(
            name, "linreg", "mean abs. PIP error", 0.05, False, methods, caps,
            f"spike-and-slab linear regression, {design} design, n={n}, p={p}",
            _linreg(n, p, design, quick), {"n": n, "p": p, "design": design},
        )  # fmt: skip
    logreg = (
        "arms-guide",
        "loorf-guide",
        "arms-mf",
        "loorf-mf",
        *STRUCTURED,
        "dhmcgibbs",
        "mixedhmc",
    )
    out["logreg-cancer-p30"] = Workload(
        "logreg-cancer-p30", "logreg", "mean abs. PIP error", 0.05, False, logreg,
        dict.fromkeys(logreg, 40.0 * s),
        "spike-and-slab logistic regression, breast-cancer data, n=569, p=30",
        _logreg(quick), {"n": 569, "p": 30},
    )  # fmt: skip
    for n, k in [(1000, 3), (1000, 10), (100_000, 3), (100_000, 10)]:
        if quick and n > 1000:
            continue
        name = f"mixture-k{k}-n{n}"
        methods = ("arms-mf", "traceenum")
        cap = (15.0 if n <= 1000 else 25.0) * s
        out[name] = Workload(
            name, "mixture", "ARI", 0.9, True, methods, dict.fromkeys(methods, cap),
            f"Gaussian mixture, K={k}, N={n}" + (", minibatches of 1000" if n > 1000 else ""),
            _mixture(n, k, quick), {"n": n, "k": k, "subsample": 1000 if n > 1000 else None},
        )  # fmt: skip
    for t_len in (100, 10_000):
        if quick and t_len > 100:
            continue
        name = f"changepoint-t{t_len}"
        methods = ("arms-mf", "loorf-mf", "traceenum", "dhmcgibbs")
        cap = (15.0 if t_len <= 100 else 30.0) * s
        out[name] = Workload(
            name, "changepoint", "TV distance", 0.1, False, methods, dict.fromkeys(methods, cap),
            f"Poisson change point, T={t_len}", _changepoint(t_len, quick), {"T": t_len},
        )  # fmt: skip
    return out


MANY_PARTICLES = ("arms-guide-n32", "loorf-guide-n32")
"""The hand-written guide with 32 particles instead of 4 (``<method>-n<particles>``), run at
``p >= 200``: the learning signal of each inclusion is the whole likelihood, whose noise from the
other ``p - 1`` coordinates more particles average out."""

PARTICLES = 4
"""Particles of ``TraceARMS_ELBO`` unless the method name says otherwise (change point: 16)."""

STRUCTURED = ("arms-mixture", "loorf-mixture", "loorf-lowrank")
"""The logistic regression's structured guides (:func:`models.bayesian.logistic_selection.mixture_guide`
with :data:`MIXTURE_COMPONENTS` components, :func:`~models.bayesian.logistic_selection.lowrank_guide`
of rank :data:`LOWRANK_RANK`)."""

MIXTURE_COMPONENTS = 4
"""Components of the ``*-mixture`` guides."""

LOWRANK_RANK = 2
"""Rank of the ``*-lowrank`` guide's latent."""

LOWRANK_PIP_DRAWS = 1000
"""Draws of the low-rank latent behind each PIP estimate of ``*-lowrank`` (fixed key)."""

DECAY = 0.999
"""Per-step decay of the VI step size, ``0.05 * DECAY**t`` (5% of the start after 3,000 steps)."""

STRUCTURED_DECAY = 0.9999
"""The structured guides' decay (5% after 30,000 steps): their inclusion site has LOORF gradients
with a quarter (mixture) of the particles per component, and with :data:`DECAY` they were still
moving when the step size had gone."""

WORKLOADS = tuple(_workloads(False))
"""Names of the full run's workloads."""

QUICK_WORKLOADS = ("linreg-orth-p20", "mixture-k3-n1000", "changepoint-t100")
"""What ``--quick`` runs unless ``--workloads`` names others (every workload has a quick size)."""


# -- metrics ----------------------------------------------------------------------------------


def _auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, scores))


def _responsibilities(
    x: np.ndarray, weights: np.ndarray, locs: np.ndarray, scales: np.ndarray
) -> np.ndarray:
    logp = (
        np.log(weights)[None]
        - 0.5 * (((x[:, None, :] - locs[None]) / scales[None]) ** 2).sum(-1)
        - np.log(scales).sum(-1)[None]
    )
    return logp


def _tau_posterior_given_rates(counts: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Mean over rate draws of ``p(tau | x, rates)`` (closed form)."""
    t = counts.size
    before = np.concatenate([[0.0], np.cumsum(counts)[:-1]])
    after = counts.sum() - before
    tau = np.arange(t)
    lp = (
        before[None] * np.log(r1)[:, None]
        - tau[None] * r1[:, None]
        + after[None] * np.log(r2)[:, None]
        - (t - tau)[None] * r2[:, None]
    )
    lp = lp - lp.max(1, keepdims=True)
    w = np.exp(lp)
    return (w / w.sum(1, keepdims=True)).mean(0)


def _evaluator(wl: Workload, ctx: dict[str, Any]) -> Callable[[dict[str, np.ndarray]], dict]:
    """``summary -> metrics``; a summary holds what the method estimates (PIPs, globals, ...)."""
    if wl.family == "logreg":
        ref = ctx["reference"]

        def logreg(s: dict[str, np.ndarray]) -> dict:
            return {"error": float(np.abs(s["pips"] - ref).mean())}

        return logreg
    if wl.family == "linreg":
        ref, truth = ctx["reference"], ctx["data"].true_coef != 0

        def linreg(s: dict[str, np.ndarray]) -> dict:
            pips = s["pips"]
            return {"error": float(np.abs(pips - ref).mean()), "auroc": _auroc(pips, truth)}

        return linreg
    if wl.family == "mixture":
        from sklearn.metrics import adjusted_rand_score

        from models.bayesian import gaussian_mixture as gm

        data, idx = ctx["data"], ctx["eval_idx"]

        def mixture(s: dict[str, np.ndarray]) -> dict:
            locs, w, sc = gm.sort_components(s["locs"], s["weights"], s["scales"])
            pred = _responsibilities(data.x[idx], w, locs, sc).argmax(1)
            return {"error": float(adjusted_rand_score(data.labels[idx], pred))}

        return mixture
    ref = ctx["reference"]

    def changepoint(s: dict[str, np.ndarray]) -> dict:
        return {"error": float(0.5 * np.abs(s["tau_probs"] - ref).sum())}

    return changepoint


# -- the methods ------------------------------------------------------------------------------


def _program(wl: Workload, ctx: dict[str, Any], method: str) -> tuple[Any, Any, tuple, dict]:
    """``(model, guide or None, args, kwargs)`` of ``wl`` for ``method``."""
    import jax.numpy as jnp

    if wl.family == "linreg":
        from models.bayesian import sparse_regression as sr

        d = ctx["data"]
        return sr.numpyro_model, sr.numpyro_guide, (jnp.asarray(d.x), jnp.asarray(d.y)), {}
    if wl.family == "logreg":
        from models.bayesian import logistic_selection as ls

        d = ctx["data"]
        args = (jnp.asarray(d.x), jnp.asarray(d.y))
        if method.endswith("-mixture"):
            kw = {"num_components": MIXTURE_COMPONENTS}
            return ls.mixture_model, ls.mixture_guide, args, kw
        if method.endswith("-lowrank"):
            return ls.lowrank_model, ls.lowrank_guide, args, {"rank": LOWRANK_RANK}
        return ls.numpyro_model, ls.numpyro_guide, args, {}
    if wl.family == "mixture":
        from models.bayesian import gaussian_mixture as gm

        kw = {"prior": ctx["prior"], "subsample_size": wl.sizes["subsample"]}
        return gm.numpyro_model, None, (jnp.asarray(ctx["data"].x),), kw
    from models.bayesian import change_point as cp

    return cp.numpyro_model, None, (jnp.asarray(ctx["data"].counts),), {"prior": ctx["prior"]}


def _init_values(wl: Workload, ctx: dict[str, Any]) -> dict[str, Any]:
    """Common initial values of the continuous sites (the same for every method)."""
    import jax.numpy as jnp

    if wl.family == "linreg":
        return {"beta": jnp.zeros(ctx["data"].x.shape[1])}
    if wl.family == "logreg":
        return {"alpha": jnp.zeros(()), "beta": jnp.zeros(ctx["data"].x.shape[1])}
    if wl.family == "mixture":
        from models.bayesian import gaussian_mixture as gm

        k = wl.sizes["k"]
        x = ctx["data"].x
        return {
            "locs": jnp.asarray(gm.initial_locs(x, k)),
            "scales": jnp.ones((k, x.shape[1])),
            "weights": jnp.full(k, 1 / k),
        }
    c = ctx["data"].counts
    return {"rate_before": jnp.asarray(c.mean()), "rate_after": jnp.asarray(c.mean())}


def _particles(method: str) -> tuple[str, int]:
    """``("arms-guide", 32)`` from ``"arms-guide-n32"``; :data:`PARTICLES` without the suffix."""
    base, _, last = method.rpartition("-")
    if last.startswith("n") and last[1:].isdigit():
        return base, int(last[1:])
    return method, PARTICLES


def _vi_summary(wl: Workload, ctx: dict, method: str, guide: Any, params: dict) -> dict:
    import jax

    method, _ = _particles(method)

    if method.endswith("-mixture"):
        from models.bayesian import logistic_selection as ls

        return {"pips": np.asarray(ls.mixture_inclusion_probabilities(params), np.float64)}
    if method.endswith("-lowrank"):
        from models.bayesian import logistic_selection as ls

        pips = ls.lowrank_inclusion_probabilities(params, LOWRANK_PIP_DRAWS, jax.random.key(1))
        return {"pips": np.asarray(pips, np.float64)}
    if wl.family in ("linreg", "logreg"):
        key = "gamma_logits" if method.endswith("guide") else "gamma_auto_logits"
        return {"pips": np.asarray(jax.nn.sigmoid(params[key]), dtype=np.float64)}
    if method == "traceenum":
        med = guide.median(params)
    else:
        med = {k: v for k, v in guide.median(params).items() if k not in ("assignment", "tau")}
    if wl.family == "mixture":
        return {k: np.asarray(med[k], dtype=np.float64) for k in ("locs", "weights", "scales")}
    if method == "traceenum":  # p(tau | x) averaged over the guide's rate draws
        draws = guide.sample_posterior(jax.random.key(1), params, sample_shape=(64,))
        return {
            "tau_probs": _tau_posterior_given_rates(
                ctx["data"].counts,
                np.asarray(draws["rate_before"], np.float64),
                np.asarray(draws["rate_after"], np.float64),
            )
        }
    return {"tau_probs": np.asarray(jax.nn.softmax(params["tau_auto_logits"]), np.float64)}


def _vi_setup(wl: Workload, ctx: dict[str, Any], method: str) -> tuple[Any, Any, float, float, int]:
    """``((model, guide), loss, step size, its per-step decay, steps per chunk)``."""
    import numpyro
    from numpyro.infer import TraceEnum_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.infer.initialization import init_to_value

    from ppl_arms.numpyro import AutoMixedMeanField, TraceARMS_ELBO

    model, guide, _, _ = _program(wl, ctx, method)
    init = init_to_value(values=_init_values(wl, ctx))
    method, particles = _particles(method)
    estimator = method.split("-")[0]
    if method == "traceenum":
        from numpyro.contrib.funsor import config_enumerate

        discrete = "assignment" if wl.family == "mixture" else "tau"
        enum_model = config_enumerate(model, default="parallel")
        guide = AutoNormal(numpyro.handlers.block(model, hide=[discrete]), init_loc_fn=init)
        loss = TraceEnum_ELBO(max_plate_nesting=1)
        return (enum_model, guide), loss, 0.05, DECAY, 20
    if wl.family == "changepoint":
        loss = TraceARMS_ELBO(16, estimator=estimator, categorical_coupling="stick_breaking")
    else:
        loss = TraceARMS_ELBO(particles, estimator=estimator)
    if method.endswith("-mf"):
        guide = AutoMixedMeanField(model, init_loc_fn=init)
    decay = STRUCTURED_DECAY if method in STRUCTURED else DECAY
    return (model, guide), loss, 0.05, decay, 20


def _run_vi(
    wl: Workload, ctx: dict, method: str, cap: float, evaluate: Callable, seed: int, quick: bool
):
    import jax
    import numpyro
    from numpyro.infer import SVI

    (model, guide), loss, lr, decay, chunk = _vi_setup(wl, ctx, method)
    _, _, args, kwargs = _program(wl, ctx, method)
    optim = numpyro.optim.Adam(lambda i: lr * decay**i)
    svi = SVI(model, guide, optim, loss)
    curve: list[dict] = []
    excluded = 0.0
    start = time.perf_counter()
    state = svi.init(jax.random.key(seed), *args, **kwargs)

    @jax.jit
    def steps(state: Any) -> Any:
        return jax.lax.scan(lambda s, _: svi.update(s, *args, **kwargs), state, None, chunk)

    done, losses = 0, []
    while True:
        state, values = steps(state)
        values = np.asarray(values)  # blocks
        done += chunk
        losses.append(float(values.mean()))
        elapsed = time.perf_counter() - start - excluded
        t = time.perf_counter()
        params = svi.get_params(state)
        metrics = evaluate(_vi_summary(wl, ctx, method, guide, params))
        excluded += time.perf_counter() - t
        curve.append({"seconds": elapsed, "steps": done, **metrics})
        if elapsed >= curve[0]["seconds"] + cap or not np.isfinite(values).all():
            break
    seconds = curve[-1]["seconds"]
    return curve, {
        "steps": done,
        "seconds_per_step": seconds / done,
        "final_loss": losses[-1],
        "loss_curve": [losses[i] for i in range(0, len(losses), max(1, len(losses) // 150))],
    }


def _run_mcmc(
    wl: Workload, ctx: dict, method: str, cap: float, evaluate: Callable, seed: int, quick: bool
):
    import jax
    from numpyro.infer import HMC, MCMC, NUTS, DiscreteHMCGibbs, MixedHMC
    from numpyro.infer.initialization import init_to_value

    model, _, args, kwargs = _program(wl, ctx, method)
    init = init_to_value(values=_init_values(wl, ctx))
    if method == "dhmcgibbs":
        kernel = DiscreteHMCGibbs(NUTS(model, init_strategy=init))
    else:
        kernel = MixedHMC(HMC(model, trajectory_length=1.2, init_strategy=init))
    p = wl.sizes.get("p", 0)
    segment = 5 if p > 200 or wl.sizes.get("T", 0) > 1000 else 50
    warmup = 20 if segment == 5 else (50 if quick else 200)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=segment, progress_bar=False)
    site = "gamma" if wl.family in ("linreg", "logreg") else "tau"
    total, count, curve, excluded = None, 0, [], 0.0
    start = time.perf_counter()
    key = jax.random.key(seed)
    while True:
        mcmc.run(key, *args, **kwargs)
        draws = np.asarray(mcmc.get_samples()[site])
        elapsed = time.perf_counter() - start - excluded
        t = time.perf_counter()
        if site == "gamma":
            chunk_sum = draws.astype(np.float64).sum(0)
        else:
            chunk_sum = np.bincount(draws.astype(int), minlength=ctx["data"].counts.size)
        total = chunk_sum if total is None else total + chunk_sum
        count += len(draws)
        summary = {"pips": total / count} if site == "gamma" else {"tau_probs": total / count}
        curve.append({"seconds": elapsed, "steps": count, **evaluate(summary)})
        excluded += time.perf_counter() - t
        if elapsed >= curve[0]["seconds"] + cap:
            break
        mcmc.post_warmup_state = mcmc.last_state
        key = mcmc.post_warmup_state.rng_key
    return curve, {
        "samples": count,
        "warmup": warmup,
        "seconds_per_sample": curve[-1]["seconds"] / count,
    }


def thin(curve: list, keep: int = 150) -> list:
    """At most about ``keep`` checkpoints of ``curve`` (log-spaced in index; first and last kept)."""
    if len(curve) <= keep:
        return curve
    idx = np.unique(np.geomspace(1, len(curve), keep).astype(int) - 1)
    return [curve[i] for i in sorted({0, *idx.tolist(), len(curve) - 1})]


def _run_method(wl: Workload, ctx: dict, method: str, seed: int, quick: bool) -> dict[str, Any]:
    evaluate = _evaluator(wl, ctx)
    cap = wl.caps[method]
    runner = _run_mcmc if method in ("dhmcgibbs", "mixedhmc") else _run_vi
    curve, extra = runner(wl, ctx, method, cap, evaluate, seed, quick)
    errors = np.array([c["error"] for c in curve])
    reached = errors >= wl.target if wl.higher_is_better else errors <= wl.target
    first = int(np.argmax(reached)) if reached.any() else None
    return {
        "cap_seconds": cap,
        "curve": thin(curve),  # the time to target is found on the full curve
        "checkpoints": len(curve),
        "time_to_target": None if first is None else curve[first]["seconds"],
        "first_result_seconds": curve[0]["seconds"],
        "final": curve[-1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }


# -- the job ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the workloads described by parsed command-line ``args``; returns the results dict."""
    from tqdm import tqdm

    workloads = _workloads(args.quick)
    names = args.workloads or (list(QUICK_WORKLOADS) if args.quick else list(workloads))
    unknown = [n for n in names if n not in workloads]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; valid: {sorted(workloads)}")
    results: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.bayes", *args.argv]),
        "config": {k: v for k, v in vars(args).items() if k != "argv"},
        "environment": _environment(),
        "workloads": {},
    }
    jobs = [(n, m) for n in names for m in _methods(workloads[n], args.methods)]
    ctxs: dict[str, dict] = {}
    with tqdm(total=len(jobs), desc="bayes", disable=args.quiet) as bar:
        for name, method in jobs:
            wl = workloads[name]
            if name not in ctxs:
                with jax_x64(True):  # the reference computations in float64
                    ctxs[name] = wl.build()
                results["workloads"][name] = {
                    "describe": wl.describe,
                    "family": wl.family,
                    "metric": wl.metric,
                    "target": wl.target,
                    "higher_is_better": wl.higher_is_better,
                    "sizes": wl.sizes,
                    "reference": ctxs[name]["reference_info"],
                    "runs": {},
                }
            bar.set_postfix_str(f"{name} {method}")
            if args.cap_scale != 1.0:
                wl.caps = {m: c * args.cap_scale for m, c in wl.caps.items()}
            with float32("numpyro"):
                out = _run_method(wl, ctxs[name], method, args.seed, args.quick)
            if args.cap_scale != 1.0:
                wl.caps = {m: c / args.cap_scale for m, c in wl.caps.items()}
            results["workloads"][name]["runs"][method] = out
            bar.update()
    return results


def _methods(wl: Workload, selected: list[str] | None) -> list[str]:
    return [m for m in wl.methods if selected is None or m in selected]


def _environment() -> dict[str, Any]:
    import importlib.metadata as md
    import os

    versions = {}
    for pkg in ("ppl_arms", "jax", "jaxlib", "numpyro", "funsor", "numpy", "scikit-learn"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        **versions,
    }


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(results: dict[str, Any]) -> str:
    """The results as Markdown: one table over all workloads."""
    rows = [
        "| workload | method | metric | target | time to target (s) | final | at (s) "
        "| first result (s) | steps / samples | AUROC | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, w in results["workloads"].items():
        for method, r in w["runs"].items():
            target = ("≥ " if w["higher_is_better"] else "≤ ") + f"{w['target']:g}"
            metric = w["metric"].replace("|", "")
            ttt = r["time_to_target"]
            end = r["final"]["seconds"]
            ttt_s = f"> {end:.0f} (not reached)" if ttt is None else f"{ttt:.1f}"
            rows.append(
                f"| {name} | {method} | {metric} | {target} | {ttt_s} | "
                f"{r['final']['error']:.3f} | {r['final']['seconds']:.1f} | "
                f"{r['first_result_seconds']:.1f} | "
                f"{r.get('steps', r.get('samples'))} | {_fmt(r['final'].get('auroc'), '.3f')} | "
                f"{r['peak_rss_mb']:.0f} |"
            )
    refs = [
        f"- `{n}`: {w['describe']}; reference: {w['reference']}"
        for n, w in results["workloads"].items()
    ]
    return "\n".join([*rows, "", *refs]) + "\n"


def plots(results: dict[str, Any], out: Path) -> list[str]:
    """One PNG per workload family: accuracy against wall-clock time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    families: dict[str, list[str]] = {}
    for name, w in results["workloads"].items():
        families.setdefault(w["family"], []).append(name)
    for family, names in families.items():
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            w = results["workloads"][name]
            for method, r in w["runs"].items():
                t = [c["seconds"] for c in r["curve"]]
                e = [c["error"] for c in r["curve"]]
                ax.plot(t, e, marker=".", ms=3, label=method)
            ax.axhline(w["target"], color="k", ls=":", lw=1)
            ax.set_xscale("log")
            if not w["higher_is_better"]:
                ax.set_yscale("log")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("wall-clock seconds")
            ax.set_ylabel(w["metric"])
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{family}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path.name)
    return written


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bayes", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="small workloads, short caps (~1 min)")
    p.add_argument(
        "--workloads",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=None,
        help=f"comma-separated subset of: {', '.join(WORKLOADS)}",
    )
    p.add_argument(
        "--methods",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=None,
        help="comma-separated subset of the methods",
    )
    p.add_argument("--cap-scale", type=float, default=1.0, help="multiply every time cap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/bayes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--from-json", default=None, help="re-render the table and plots of a saved bayes.json"
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="merge this run's workloads into an existing OUT/bayes.json (its other workloads "
        "are kept; the ones run again are replaced, or with --methods only those methods' runs) "
        "instead of overwriting it",
    )
    return p


def merge(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with the workloads of ``new`` added or replaced (neither argument is modified).

    The top-level ``command``, ``config``, ``environment`` and ``total_seconds`` stay those of
    ``saved``; every merged workload records its own run under ``"run"`` (command, config,
    environment, seconds), and ``"merged_runs"`` lists the merges. Workloads are ordered as in
    :data:`WORKLOADS`.

    If ``new`` ran a subset of the methods (``--methods``), a workload already in ``saved`` keeps
    its other methods' runs: only the methods run are added or replaced, each with its own
    ``"run"``, and the merge records the largest difference between the two runs' reference
    PIPs (``"reference_max_difference"``; the reference is deterministic given its seed, so this
    should be 0).
    """
    out = {**saved, "workloads": dict(saved["workloads"])}
    run_info = {k: new[k] for k in ("command", "config", "environment", "total_seconds")}
    record: dict[str, Any] = {**run_info, "workloads": list(new["workloads"])}
    subset = new["config"].get("methods") is not None
    for name, w in new["workloads"].items():
        old = saved["workloads"].get(name)
        if subset and old is not None:
            runs = {**old["runs"], **{m: {**r, "run": run_info} for m, r in w["runs"].items()}}
            out["workloads"][name] = {**old, "runs": runs}
            a, b = old["reference"].get("pips"), w["reference"].get("pips")
            if a is not None and b is not None:
                diff = float(np.abs(np.asarray(a) - np.asarray(b)).max())
                record.setdefault("reference_max_difference", {})[name] = diff
        else:
            out["workloads"][name] = {**w, "run": run_info}
    out["merged_runs"] = [*saved.get("merged_runs", []), record]
    order = {name: i for i, name in enumerate(WORKLOADS)}
    out["workloads"] = dict(
        sorted(out["workloads"].items(), key=lambda kv: order.get(kv[0], len(order)))
    )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run, print the table and write the outputs."""
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        total = results["total_seconds"]
    else:
        start = time.perf_counter()
        results = run(args)
        total = results["total_seconds"] = time.perf_counter() - start
        path = out / "bayes.json"
        if args.merge and path.exists():
            results = merge(json.loads(path.read_text()), results)
        path.write_text(json.dumps(results, indent=1, default=float))
    text = table(results)
    (out / "bayes.md").write_text(text)
    written = plots(results, out)
    print(text)
    print(f"total {total:.0f} s; wrote {out}/bayes.{{md,json}}, {', '.join(written)}")
    return results


if __name__ == "__main__":
    main()
