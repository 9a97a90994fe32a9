"""The Bayesian main job: its reference answers, a smoke run, and the ``--quick`` run (slow)."""

import json
import math

import numpy as np
import pytest

from benchmarks import bayes
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


def test_collapsed_gibbs_reference_matches_enumeration():
    data = sr.make_data(80, 8, "correlated", signal_fraction=0.3, seed=4)
    prior = sr.SparsePrior()
    exact = sr.enumerated_inclusion_probabilities(data.x, data.y, prior, chunk=32)
    ref = sr.collapsed_gibbs_reference(data.x, data.y, prior, num_chains=2, num_sweeps=400)
    assert np.abs(ref["pips"] - exact).max() < 0.03
    assert ref["rhat_max"] < 1.1


def _check_outputs(out, results, workloads):
    saved = json.loads((out / "bayes.json").read_text())
    assert set(saved["workloads"]) == set(workloads)
    for w in saved["workloads"].values():
        for r in w["runs"].values():
            assert r["curve"] and all(math.isfinite(c["error"]) for c in r["curve"])
            assert r["final"]["seconds"] >= r["first_result_seconds"] > 0
    assert (out / "bayes.md").read_text().startswith("| workload | method |")
    assert results["command"].startswith("python -m benchmarks.bayes")


def test_bayes_smoke(tmp_path):
    results = bayes.main(
        ["--quick", "--workloads", "linreg-orth-p20", "--methods", "arms-guide",
         "--cap-scale", "0.02", "--quiet", "--out", str(tmp_path)]
    )  # fmt: skip
    _check_outputs(tmp_path, results, ["linreg-orth-p20"])
    runs = results["workloads"]["linreg-orth-p20"]["runs"]
    assert set(runs) == {"arms-guide"}
    assert 0.0 <= runs["arms-guide"]["final"]["auroc"] <= 1.0
    assert (tmp_path / "linreg.png").stat().st_size > 0


@pytest.mark.slow
def test_bayes_quick(tmp_path):
    results = bayes.main(["--quick", "--quiet", "--out", str(tmp_path)])
    names = ["linreg-orth-p20", "mixture-k3-n1000", "changepoint-t100"]
    _check_outputs(tmp_path, results, names)
    for family in ("linreg", "mixture", "changepoint"):
        assert (tmp_path / f"{family}.png").stat().st_size > 0
