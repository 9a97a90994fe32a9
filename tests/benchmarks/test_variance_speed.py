"""The variance and speed benchmarks run end to end with tiny budgets."""

import argparse
import json
import math

from benchmarks import speed, variance


def test_variance_benchmark(tmp_path):
    out = variance.main(
        ["--backends", "pyro", "--models", "binary_vae_linear", "--estimators",
         "arms,disarm,loorf", "--num-particles", "2,3", "--train-steps", "2",
         "--replicates", "3", "--batch-size", "6", "--out", str(tmp_path)]
    )  # fmt: skip
    rows = json.loads((tmp_path / "variance.json").read_text())["results"]
    assert rows == out["results"]
    assert all(math.isfinite(r["variance"]) and r["variance"] > 0 for r in rows)
    assert {r["n"] for r in rows if r["estimator"] == "disarm"} == {2}  # even n only
    assert "| arms |" in (tmp_path / "variance.md").read_text()


def test_speed_benchmark(tmp_path):
    out = speed.main(
        ["--dataset", "digits", "--latents", "8", "--rounds", "2", "--steps", "2",
         "--no-memory", "--losses", "trace,tracegraph,arms", "--out", str(tmp_path)]
    )  # fmt: skip
    for backend in ("numpyro", "pyro"):
        assert set(out["backends"][backend]["median_seconds"]) == {"trace", "tracegraph", "arms"}
        assert all(v > 0 for v in out["backends"][backend]["median_seconds"].values())
    assert "TraceARMS_ELBO / Trace_ELBO" in (tmp_path / "speed.md").read_text()


def test_peak_memory_probe():
    args = argparse.Namespace(dataset="digits", latents=8, num_particles=2, memory_steps=1, seed=0)
    assert speed.peak_memory_mb("numpyro", "arms", args) > 50  # a real process, in MB
