"""The variance and speed benchmarks run end to end with tiny budgets."""

import argparse
import json
import math

import pytest

from benchmarks import speed, variance


def test_variance_benchmark(tmp_path):
    out = variance.main(
        ["--backends", "pyro", "--models", "binary_vae_linear", "--estimators",
         "arms,disarm,loorf", "--num-particles", "2,3", "--train-steps", "2",
         "--replicates", "3", "--batch-size", "6", "--timing-rounds", "2", "--timing-steps", "2",
         "--out", str(tmp_path)]
    )  # fmt: skip
    saved = json.loads((tmp_path / "variance.json").read_text())
    rows = saved["results"]
    assert rows == out["results"]
    assert all(math.isfinite(r["variance"]) and r["variance"] > 0 for r in rows)
    assert {r["n"] for r in rows if r["estimator"] == "disarm"} == {2}  # even n only
    # step times of the same run, one per (n, estimator), paired with LOORF's
    timed = {(t["n"], t["estimator"]): t for t in saved["timings"]}
    assert set(timed) == {(2, "arms"), (2, "disarm"), (2, "loorf"), (3, "arms"), (3, "loorf")}
    assert timed[(2, "loorf")]["paired_step_ratio_to_loorf_quartiles"] == [1.0, 1.0, 1.0]
    assert all(t["median_step_seconds"] > 0 for t in timed.values())
    text = (tmp_path / "variance.md").read_text()
    assert "| arms |" in text and "var x time /LOORF" in text and "SVI step time" in text
    # the work-normalised cell is the variance ratio times the median paired step-time ratio
    var = {(r["checkpoint"], r["n"], r["estimator"]): r["variance"] for r in rows}
    ratio = var[("initial", 2, "arms")] / var[("initial", 2, "loorf")]
    work = ratio * timed[(2, "arms")]["paired_step_ratio_to_loorf_quartiles"][1]
    assert f"{ratio:.2f}, -, {work:.2f} |" in text


def test_speed_benchmark(tmp_path):
    out = speed.main(
        ["--dataset", "digits", "--latents", "8", "--rounds", "2", "--steps", "2",
         "--no-memory", "--losses", "trace,tracegraph,arms", "--variance-replicates", "0",
         "--out", str(tmp_path)]
    )  # fmt: skip
    for backend in ("numpyro", "pyro"):
        assert set(out["backends"][backend]["median_seconds"]) == {"trace", "tracegraph", "arms"}
        assert all(v > 0 for v in out["backends"][backend]["median_seconds"].values())
        assert out["backends"][backend]["work_normalised_variance_vs_loorf"] == {}
    text = (tmp_path / "speed.md").read_text()
    assert "TraceARMS_ELBO / Trace_ELBO" in text and "| - | - | - |" in text


def test_speed_reports_work_normalised_variance(tmp_path):
    # Pyro only (no compile), so the test stays fast; the formula is shared by both backends
    out = speed.main(
        ["--dataset", "digits", "--latents", "8", "--rounds", "3", "--steps", "2",
         "--no-memory", "--backends", "pyro", "--losses", "arms,loorf",
         "--variance-replicates", "3", "--out", str(tmp_path)]
    )  # fmt: skip
    res = out["backends"]["pyro"]
    # variance ratio x paired-by-round step-time ratio, both to LOORF in this run
    work = res["work_normalised_variance_vs_loorf"]
    var, q = res["grad_variance_init"], res["paired_ratio_to_loorf_quartiles"]
    assert work["loorf"] == 1.0 and q["loorf"] == [1.0, 1.0, 1.0]
    assert math.isclose(work["arms"], var["arms"] / var["loorf"] * q["arms"][1])
    assert (
        f"| {var['arms'] / var['loorf']:.2f} | {work['arms']:.2f} |"
        in (tmp_path / "speed.md").read_text()
    )


def test_speed_skips_losses_a_backend_lacks_and_reports_the_jit_speedup(tmp_path):
    out = speed.main(
        ["--dataset", "digits", "--latents", "8", "--rounds", "2", "--steps", "2",
         "--no-memory", "--losses", "trace,arms,jit-arms", "--variance-replicates", "0",
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert set(out["backends"]["numpyro"]["median_seconds"]) == {"trace", "arms"}
    assert set(out["backends"]["pyro"]["median_seconds"]) == {"trace", "arms", "jit-arms"}
    assert out["config"]["losses"] == ["trace", "arms", "jit-arms"]
    assert "JitTraceARMS_ELBO is " in (tmp_path / "speed.md").read_text()


@pytest.mark.slow  # a fresh worker process that imports both backends (about 6 s)
def test_peak_memory_probe():
    args = argparse.Namespace(dataset="digits", latents=8, num_particles=2, memory_steps=1, seed=0)
    assert speed.peak_memory_mb("numpyro", "arms", args) > 50  # a real process, in MB
