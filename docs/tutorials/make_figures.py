"""Fit the reference Bayesian models and write the tutorials' figures and numbers.

Run from the repository root (about two minutes with NumPyro only; add ``--pyro`` for the Pyro fits,
several minutes more)::

    python docs/tutorials/make_figures.py [--pyro]

Writes ``docs/tutorials/figures/*.png`` and ``docs/tutorials/figures/results.json`` (every number
quoted in the tutorials) and prints the ArviZ summaries shown there. Not part of the docs build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # as the test suite
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = Path(__file__).resolve().parent / "figures"

import arviz as az  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from models.bayesian import change_point as cp  # noqa: E402
from models.bayesian import fit_numpyro, fit_pyro  # noqa: E402
from models.bayesian import gaussian_mixture as gm  # noqa: E402
from models.bayesian import variable_selection as vs  # noqa: E402
from ppl_arms.numpyro import to_inference_data  # noqa: E402

warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping")


def summary(idata, var_names):
    table = az.summary(idata, var_names=var_names, kind="stats", round_to=3)
    print(table.to_string())
    return table.to_string()


def variable_selection(results, with_pyro):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (name, data) in zip(
        axes,
        [("synthetic", vs.make_synthetic_data()), ("diabetes", vs.load_diabetes_data())],
        strict=True,
    ):
        x, y = jnp.asarray(data.x), jnp.asarray(data.y)
        exact = vs.exact_inclusion_probabilities(data.x, data.y)
        start = time.perf_counter()
        fit = fit_numpyro(vs.numpyro_model, x, y, **vs.FIT_OPTIONS)
        seconds = time.perf_counter() - start
        fitted = np.asarray(jax.nn.sigmoid(fit.params["gamma_auto_logits"]))
        entry = {
            "exact": exact.round(4).tolist(),
            "numpyro": fitted.round(4).tolist(),
            "numpyro_max_abs_diff": float(np.abs(fitted - exact).max()),
            "numpyro_seconds": seconds,
        }
        seeds = []
        for seed in (1, 2):
            other = fit_numpyro(vs.numpyro_model, x, y, seed=seed, **vs.FIT_OPTIONS)
            p = np.asarray(jax.nn.sigmoid(other.params["gamma_auto_logits"]))
            seeds.append(
                {
                    "seed": seed,
                    "probs": p.round(4).tolist(),
                    "max_abs_diff": float(np.abs(p - exact).max()),
                }
            )
        entry["numpyro_other_seeds"] = seeds
        if with_pyro:
            import torch

            torch.set_num_threads(1)
            pfit = fit_pyro(
                vs.pyro_model, torch.as_tensor(data.x), torch.as_tensor(data.y), **vs.FIT_OPTIONS
            )
            p = torch.sigmoid(pfit.guide.logits.gamma.detach()).numpy()
            entry["pyro"] = p.round(4).tolist()
            entry["pyro_max_abs_diff"] = float(np.abs(p - exact).max())
        gammas, log_post = vs.exact_model_log_posterior(data.x, data.y)
        cov = np.cov(gammas.T, aweights=np.exp(log_post))
        corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
        entry["indicator_correlation"] = corr.round(3).tolist()
        entry["feature_names"] = list(data.feature_names)
        results[f"variable_selection_{name}"] = entry
        idx = np.arange(len(exact))
        ax.bar(idx - 0.2, exact, 0.4, label="exact (enumeration)")
        ax.bar(idx + 0.2, fitted, 0.4, label="AutoMixedMeanField + ARMS")
        ax.set_xticks(idx, data.feature_names, rotation=45)
        ax.set_title(f"{name}: max |difference| {entry['numpyro_max_abs_diff']:.3f}")
        if name == "diabetes":
            idata = to_inference_data(
                vs.numpyro_model,
                fit.guide,
                fit.params,
                x,
                y,
                losses=fit.losses,
                coords={"predictors": list(data.feature_names)},
            )
            results["variable_selection_summary"] = summary(idata, ["gamma", "sigma2"])
    axes[0].set_ylabel("P(included | y)")
    axes[0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "variable_selection.png", dpi=110)
    plt.close(fig)


def gaussian_mixture(results, with_pyro):
    import numpyro
    from numpyro import handlers
    from numpyro.infer import SVI, TraceEnum_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.infer.initialization import init_to_value

    opts = gm.FIT_OPTIONS
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (name, data) in zip(
        axes, [("synthetic", gm.make_synthetic_data()), ("iris", gm.load_iris())], strict=True
    ):
        x = jnp.asarray(data.x)
        init = init_to_value(values={"locs": jnp.asarray(gm.initial_locs(data.x, 3))})
        start = time.perf_counter()
        fit = fit_numpyro(gm.numpyro_model, x, init_loc_fn=init, **opts)
        seconds = time.perf_counter() - start
        guide = AutoNormal(handlers.block(gm.numpyro_model, hide=["assignment"]), init_loc_fn=init)
        optim = numpyro.optim.Adam(lambda i: opts["step_size"] * opts["decay"] ** i)
        svi = SVI(gm.enumerated_model("numpyro"), guide, optim, TraceEnum_ELBO(max_plate_nesting=1))
        ref = svi.run(jax.random.key(0), opts["num_steps"], x, progress_bar=False)
        ours_med = fit.guide.median(fit.params)
        ref_med = guide.median(ref.params)
        keys = ("locs", "weights", "scales")
        a = dict(
            zip(keys, gm.sort_components(*(np.asarray(ours_med[k]) for k in keys)), strict=True)
        )
        b = dict(
            zip(keys, gm.sort_components(*(np.asarray(ref_med[k]) for k in keys)), strict=True)
        )
        entry = {
            k: {
                "arms": a[k].round(4).tolist(),
                "enum": b[k].round(4).tolist(),
                "max_abs_diff": float(np.abs(a[k] - b[k]).max()),
            }
            for k in keys
        }
        entry["numpyro_seconds"] = seconds
        assignment = np.asarray(fit.guide.median(fit.params)["assignment"])
        if data.labels is not None:
            # agreement with the true labels up to relabelling (best permutation)
            from itertools import permutations

            entry["label_agreement"] = max(
                float(np.mean(np.asarray(perm)[assignment] == data.labels))
                for perm in permutations(range(3))
            )
        if with_pyro and name == "synthetic":
            import torch

            torch.set_num_threads(1)
            from pyro.infer.autoguide.initialization import init_to_value as pyro_init

            pinit = pyro_init(values={"locs": torch.as_tensor(gm.initial_locs(data.x, 3))})
            pfit = fit_pyro(gm.pyro_model, torch.as_tensor(data.x), init_loc_fn=pinit, **opts)
            pm = pfit.guide.median()
            c = dict(
                zip(keys, gm.sort_components(*(pm[k].detach().numpy() for k in keys)), strict=True)
            )
            entry["pyro_max_abs_diff_vs_numpyro_enum"] = {
                k: float(np.abs(c[k] - b[k]).max()) for k in keys
            }
        results[f"gaussian_mixture_{name}"] = entry
        ax.scatter(data.x[:, 0], data.x[:, 1], c=assignment, s=12, cmap="viridis", alpha=0.7)
        ax.scatter(a["locs"][:, 0], a["locs"][:, 1], marker="x", s=120, c="red", label="ARMS fit")
        ax.scatter(
            b["locs"][:, 0], b["locs"][:, 1], marker="+", s=160, c="black", label="TraceEnum_ELBO"
        )
        ax.set_title(f"{name}: means differ by at most {entry['locs']['max_abs_diff']:.3f}")
        ax.legend(fontsize=8)
        if name == "iris":
            idata = to_inference_data(gm.numpyro_model, fit.guide, fit.params, x, losses=fit.losses)
            results["gaussian_mixture_summary"] = summary(idata, ["weights", "locs"])
            results["gaussian_mixture_idata_dims"] = {
                k: list(idata.posterior[k].dims)
                for k in ("weights", "locs", "scales", "assignment")
            }
    fig.tight_layout()
    fig.savefig(OUT / "gaussian_mixture.png", dpi=110)
    plt.close(fig)


def change_point(results, with_pyro):
    data = cp.make_synthetic_data()
    exact = cp.exact_posterior(data.counts)
    counts = jnp.asarray(data.counts)
    start = time.perf_counter()
    fit = fit_numpyro(cp.numpyro_model, counts, **cp.FIT_OPTIONS)
    seconds = time.perf_counter() - start
    q = np.asarray(jax.nn.softmax(fit.params["tau_auto_logits"]))
    draws = fit.guide.sample_posterior(jax.random.key(1), fit.params, sample_shape=(20000,))
    entry = {
        "true_tau": data.true_tau,
        "exact_mean_tau": exact.mean,
        "fitted_mean_tau": float(np.arange(q.size) @ q),
        "total_variation": float(0.5 * np.abs(q - exact.probs).sum()),
        "max_abs_diff": float(np.abs(q - exact.probs).max()),
        "exact_rates": [exact.rate_before_mean, exact.rate_after_mean],
        "fitted_rates": [float(draws["rate_before"].mean()), float(draws["rate_after"].mean())],
        "exact_mode": int(exact.probs.argmax()),
        "exact_mode_prob": float(exact.probs.max()),
        "fitted_mode_prob": float(q[exact.probs.argmax()]),
        "numpyro_seconds": seconds,
    }
    loorf = fit_numpyro(
        cp.numpyro_model,
        counts,
        **{
            **cp.FIT_OPTIONS,
            "loss_options": {**cp.FIT_OPTIONS["loss_options"], "estimator": "loorf"},
        },
    )
    ql = np.asarray(jax.nn.softmax(loorf.params["tau_auto_logits"]))
    entry["loorf_total_variation"] = float(0.5 * np.abs(ql - exact.probs).sum())
    if with_pyro:
        import torch

        torch.set_num_threads(1)
        pfit = fit_pyro(cp.pyro_model, torch.as_tensor(data.counts), **cp.FIT_OPTIONS)
        pq = torch.softmax(pfit.guide.logits.tau.detach(), -1).numpy()
        entry["pyro_total_variation"] = float(0.5 * np.abs(pq - exact.probs).sum())
    results["change_point"] = entry
    idata = to_inference_data(cp.numpyro_model, fit.guide, fit.params, counts, losses=fit.losses)
    results["change_point_summary"] = summary(idata, ["tau", "rate_before", "rate_after"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.bar(np.arange(data.counts.size), data.counts, color="0.6")
    ax1.axvline(data.true_tau, color="red", ls="--", label=f"true change ({data.true_tau})")
    ax1.set_xlabel("time step")
    ax1.set_ylabel("count")
    ax1.legend(fontsize=8)
    window = slice(25, 56)
    steps = np.arange(data.counts.size)[window]
    ax2.bar(steps - 0.2, exact.probs[window], 0.4, label="exact p(tau | x)")
    ax2.bar(steps + 0.2, q[window], 0.4, label="q(tau), ARMS fit")
    ax2.set_xlabel("tau")
    ax2.set_title(f"total variation {entry['total_variation']:.3f}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "change_point.png", dpi=110)
    plt.close(fig)


def exact_gamma_gradient(data, params, num_nodes=40):
    """d(-ELBO)/d(gamma logits) exactly: 1024 indicator configurations x Gauss-Hermite in log sigma2."""
    import itertools

    import numpyro.distributions as dist

    prior = vs.SpikeSlabPrior()
    likelihood = vs._numpyro_likelihood()
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    gammas = jnp.asarray(np.array(list(itertools.product([0, 1], repeat=x.shape[1]))))
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
    weights = weights / np.sqrt(2 * np.pi)
    loc, scale = params["sigma2_auto_loc"], params["sigma2_auto_scale"]

    def elbo(phi):
        log_q = jnp.sum(
            jnp.where(gammas == 1, jax.nn.log_sigmoid(phi), jax.nn.log_sigmoid(-phi)), -1
        )
        total = 0.0
        for node, weight in zip(nodes, weights, strict=True):
            u = loc + scale * node
            s2 = jnp.exp(u)
            log_p = likelihood(x, gammas, s2, prior.slab_scale).log_prob(y)
            log_p = log_p + jnp.sum(dist.Bernoulli(prior.inclusion_prob).log_prob(gammas), -1)
            log_p = log_p + dist.InverseGamma(prior.noise_shape, prior.noise_rate).log_prob(s2)
            log_q_s2 = dist.Normal(loc, scale).log_prob(u) - u
            total = total + weight * jnp.sum(jnp.exp(log_q) * (log_p - log_q - log_q_s2))
        return total

    return np.asarray(jax.grad(lambda phi: -elbo(phi))(params["gamma_auto_logits"]))


def diagnostics(results, with_pyro):
    """Gradient variance of several losses at the variable-selection guide's initial parameters."""
    import numpyro
    from numpyro.infer import SVI, TraceGraph_ELBO

    from ppl_arms.numpyro import AutoMixedMeanField, TraceARMS_ELBO, gradient_variance

    data = vs.make_synthetic_data()
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    guide = AutoMixedMeanField(vs.numpyro_model)
    svi = SVI(vs.numpyro_model, guide, numpyro.optim.Adam(0.05), TraceARMS_ELBO(4))
    params = svi.get_params(svi.init(jax.random.key(0), x, y))
    losses = {
        "arms": TraceARMS_ELBO(4),
        "loorf": TraceARMS_ELBO(4, estimator="loorf"),
        "reinforce": TraceARMS_ELBO(4, estimator="reinforce"),
        "numpyro TraceGraph_ELBO": TraceGraph_ELBO(4),
    }
    entry = {}
    for name, loss in losses.items():
        table = gradient_variance(loss, vs.numpyro_model, guide, params, x, y, num_estimates=2000)
        entry[name] = {
            "gamma_logits_variance": table["gamma_auto_logits"].total_variance,
            "gamma_logits_snr": table["gamma_auto_logits"].snr,
            "gamma_logits_mean": table["gamma_auto_logits"].mean.round(2).tolist(),
            "gamma_logits_standard_error": table["gamma_auto_logits"]
            .standard_error.round(2)
            .tolist(),
            "total_variance": table.total_variance,
        }
        if name == "arms":
            print(table)
            print(table.by_site())
            entry["table"] = str(table)
            entry["by_site"] = str(table.by_site())
    entry["gamma_logits_exact_gradient"] = exact_gamma_gradient(data, params).round(2).tolist()
    results["diagnostics"] = entry
    print(json.dumps(entry, indent=1, default=str))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pyro", action="store_true", help="also fit with Pyro (slow)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these steps")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    OUT.mkdir(exist_ok=True)
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if args.only and path.exists() else {}
    for step in (variable_selection, gaussian_mixture, change_point, diagnostics):
        if args.only and step.__name__ not in args.only:
            continue
        start = time.perf_counter()
        step(results, args.pyro)
        print(f"{step.__name__}: {time.perf_counter() - start:.0f} s", flush=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
