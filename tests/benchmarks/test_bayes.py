"""The Bayesian main job: its reference answers, a smoke run, and the ``--quick`` run (slow)."""

import json
import math

import numpy as np
import pytest

from benchmarks import bayes
from models.bayesian import logistic_selection as ls
from models.bayesian import sparse_regression as sr


def test_orthogonal_closed_form_matches_enumeration():
    data = sr.make_data(60, 8, "orthogonal", signal_fraction=0.3, seed=3)
    prior = sr.SparsePrior()
    closed = sr.orthogonal_inclusion_probabilities(data.x, data.y, prior)
    exact = sr.enumerated_inclusion_probabilities(data.x, data.y, prior, chunk=16)
    np.testing.assert_allclose(closed, exact, atol=1e-12)


def test_closed_form_rejects_a_correlated_design():
    data = sr.make_data(60, 8, "correlated", seed=3)
    with pytest.raises(ValueError, match="orthogonal"):
        sr.orthogonal_inclusion_probabilities(data.x, data.y)


@pytest.mark.parametrize(
    "prior", [sr.SparsePrior(), sr.SparsePrior(inclusion_prob=0.3, slab_scale=0.5, noise_scale=2.0)]
)
def test_collapsed_gibbs_reference_matches_enumeration(prior):
    data = sr.make_data(
        80, 8, "correlated", signal_fraction=0.3, seed=4, noise_scale=prior.noise_scale
    )
    exact = sr.enumerated_inclusion_probabilities(data.x, data.y, prior, chunk=32)
    ref = sr.collapsed_gibbs_reference(data.x, data.y, prior, num_chains=2, num_sweeps=400)
    assert np.abs(ref["pips"] - exact).max() < 0.03
    assert ref["rhat_max"] < 1.1


def test_polya_gamma_draws_have_the_right_moments():
    import jax

    z = np.array([0.0, 1.0, 4.0])
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = np.asarray(jax.vmap(lambda k: ls.sample_polya_gamma(k, z, num_terms=100))(keys))
    mean = np.array([0.25, *(np.tanh(z[1:] / 2) / (2 * z[1:]))])
    zz = z[1:]
    var = np.array([1 / 24, *((np.sinh(zz) - zz) / (4 * zz**3 * np.cosh(zz / 2) ** 2))])
    np.testing.assert_allclose(draws.mean(0), mean, rtol=0.03)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.1)


def test_polya_gamma_reference_matches_importance_sampling():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 2))
    eta = 0.3 + x @ np.array([1.5, 0.0])
    y = (rng.random(30) < 1 / (1 + np.exp(-eta))).astype(float)
    prior = ls.LogisticPrior(inclusion_prob=0.3)
    exact = ls.importance_inclusion_probabilities(x, y, prior, num_draws=100_000)
    ref = ls.polya_gamma_reference(
        x, y, prior, num_chains=2, num_sweeps=1000, warmup=100, num_terms=50
    )
    assert np.abs(ref["pips"] - exact).max() < 0.03
    assert ref["rhat_max"] < 1.1


def test_merge_keeps_the_other_workloads():
    def results(command, names):
        return {
            "command": command, "config": {}, "environment": {}, "total_seconds": 1.0,
            "workloads": {n: {"runs": {"m": command}} for n in names},
        }  # fmt: skip

    saved = results("first", ["changepoint-t100", "linreg-orth-p20"])
    merged = bayes.merge(saved, results("second", ["logreg-cancer-p30", "linreg-orth-p20"]))
    assert list(merged["workloads"]) == ["linreg-orth-p20", "logreg-cancer-p30", "changepoint-t100"]
    assert merged["workloads"]["changepoint-t100"]["runs"]["m"] == "first"
    assert merged["workloads"]["linreg-orth-p20"]["runs"]["m"] == "second"
    assert merged["workloads"]["logreg-cancer-p30"]["run"]["command"] == "second"
    assert merged["command"] == "first" and len(merged["merged_runs"]) == 1
    assert "run" not in saved["workloads"]["linreg-orth-p20"]


def test_merge_of_a_method_subset_keeps_the_other_methods():
    def results(command, methods, runs, pips):
        return {
            "command": command, "config": {"methods": methods}, "environment": {},
            "total_seconds": 1.0,
            "workloads": {"logreg-cancer-p30": {
                "reference": {"pips": pips}, "runs": dict.fromkeys(runs, command),
            }},
        }  # fmt: skip

    saved = results("first", None, ["arms-guide", "dhmcgibbs"], [0.1, 0.5])
    new = results("second", ["arms-mixture"], ["arms-mixture"], [0.1, 0.52])
    new["workloads"]["logreg-cancer-p30"]["runs"] = {"arms-mixture": {"final": 1}}
    merged = bayes.merge(saved, new)
    runs = merged["workloads"]["logreg-cancer-p30"]["runs"]
    assert list(runs) == ["arms-guide", "dhmcgibbs", "arms-mixture"]
    assert runs["arms-guide"] == "first" and runs["arms-mixture"]["run"]["command"] == "second"
    diff = merged["merged_runs"][-1]["reference_max_difference"]["logreg-cancer-p30"]
    assert math.isclose(diff, 0.02, rel_tol=1e-9)
    assert "run" not in merged["workloads"]["logreg-cancer-p30"]


def _check_outputs(out, results, workloads):
    saved = json.loads((out / "bayes.json").read_text())
    assert set(saved["workloads"]) == set(workloads)
    for w in saved["workloads"].values():
        for r in w["runs"].values():
            assert r["curve"] and all(math.isfinite(c["error"]) for c in r["curve"])
            assert r["final"]["seconds"] >= r["first_result_seconds"] > 0
    assert (out / "bayes.md").read_text().startswith("| workload | method |")
    assert results["command"].startswith("python -m benchmarks.bayes")


def _smoke(out, workload: str, methods: str) -> dict:
    """A quick run of ``methods`` on ``workload`` with tiny caps, its outputs checked."""
    results = bayes.main(
        ["--quick", "--workloads", workload, "--methods", methods,
         "--cap-scale", "0.02", "--quiet", "--out", str(out)]
    )  # fmt: skip
    _check_outputs(out, results, [workload])
    return results["workloads"][workload]


def test_bayes_smoke(tmp_path):
    w = _smoke(tmp_path, "linreg-orth-p20", "arms-guide")
    runs = w["runs"]
    assert set(runs) == {"arms-guide"}
    assert 0.0 <= runs["arms-guide"]["final"]["auroc"] <= 1.0
    assert (tmp_path / "linreg.png").stat().st_size > 0


@pytest.mark.slow
def test_bayes_logreg_smoke(tmp_path):
    w = _smoke(tmp_path, "logreg-cancer-p30", "arms-guide,dhmcgibbs")
    assert set(w["runs"]) == {"arms-guide", "dhmcgibbs"}
    assert len(w["reference"]["pips"]) == 30 and w["reference"]["rhat_max"] > 0
    assert (tmp_path / "logreg.png").stat().st_size > 0


def test_particles_suffix():
    assert bayes._particles("arms-guide-n32") == ("arms-guide", 32)
    assert bayes._particles("loorf-mf") == ("loorf-mf", bayes.PARTICLES)
    assert set(bayes.MANY_PARTICLES) <= set(bayes._workloads(True)["linreg-corr-p200"].methods)


@pytest.mark.slow
def test_bayes_correlated_p200_smoke(tmp_path):
    w = _smoke(tmp_path, "linreg-corr-p200", "loorf-guide-n32")
    assert set(w["runs"]) == {"loorf-guide-n32"}
    assert w["reference"]["how"].startswith("collapsed Gibbs") and w["reference"]["rhat_max"] > 0
    assert w["runs"]["loorf-guide-n32"]["steps"] > 0


@pytest.mark.slow
def test_bayes_structured_smoke(tmp_path):
    methods = ",".join(bayes.STRUCTURED)
    w = _smoke(tmp_path, "logreg-cancer-p30", methods)
    runs = w["runs"]
    assert set(runs) == set(bayes.STRUCTURED)
    for r in runs.values():
        assert 0.0 <= r["final"]["error"] <= 1.0


@pytest.mark.slow
def test_bayes_quick(tmp_path):
    results = bayes.main(["--quick", "--quiet", "--out", str(tmp_path)])
    names = ["linreg-orth-p20", "mixture-k3-n1000", "changepoint-t100"]
    _check_outputs(tmp_path, results, names)
    for family in ("linreg", "mixture", "changepoint"):
        assert (tmp_path / f"{family}.png").stat().st_size > 0
