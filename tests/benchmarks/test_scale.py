"""The scaling benchmark runs end to end with tiny sizes (steps in-process, devices in subprocesses)."""

import json
import math

import pytest

from benchmarks import scale


@pytest.mark.slow  # fresh worker processes per size (about 20 s)
def test_scale_benchmark(tmp_path):
    out = scale.main(
        ["--sizes", "1e3", "2e3", "--cases", "arms", "host", "--k-values", "2", "--k-sizes", "1e3", "2e3",
         "--devices", "1", "2", "--device-size", "1e3", "--repeats", "1", "--in-process",
         "--out", str(tmp_path)]
    )  # fmt: skip
    report = json.loads((tmp_path / "scale.json").read_text())
    assert report["scaling"] == out["scaling"] and not report["isolated"]

    rows = report["scaling"]
    assert {(r["backend"], r["loss"], r["size"]) for r in rows} == {
        (b, loss, n)
        for b in ("numpyro", "pyro")
        for loss in ("trace", "host")
        for n in (1000, 2000)
    }
    ratios = report["host_ratios"]
    assert {(r["backend"], r["size"]) for r in ratios} == {
        (b, n) for b in ("numpyro", "pyro") for n in (1000, 2000)
    }
    assert all(r["loss"] == "trace" and r["time_ratio"] > 0 for r in ratios)
    for r in rows:
        assert r["median_s"] > 0 and len(r["times_s"]) == 1
        # n = 4 particles x (sample + log-prob bytes): 32 bytes per element, 64 under JAX x64
        assert r["unit_bytes"] in (32 * r["size"], 64 * r["size"])
    assert all(r["xla_temp_bytes"] > 0 for r in rows if r["backend"] == "numpyro")

    growth = {g["backend"]: g for g in report["growth"]}
    assert set(growth) == {"numpyro", "pyro"}
    for g in growth.values():
        assert g["size_ratio"] == 2 and g["time_ratio"] > 0 and math.isfinite(g["exponent"])

    ks = report["k_table"]
    assert {(r["backend"], r["coupling"]) for r in ks} == {
        (b, c) for b in ("numpyro", "pyro") for c in scale.COUPLINGS
    }
    assert all(r["k"] == 2 and r["sizes"] == [1000, 2000] and min(r["median_s"]) > 0 for r in ks)

    devices = report["devices"]
    assert [d["devices"] for d in devices] == [1, 2]
    assert all(d["median_s"] > 0 and d["dtype"] == "float64" for d in devices)
    assert math.isclose(devices[0]["loss"], devices[1]["loss"], rel_tol=1e-10)
    assert math.isclose(devices[0]["grad_sum"], devices[1]["grad_sum"], rel_tol=1e-8, abs_tol=1e-8)
    assert "data" in devices[1]["grad_sharding"]

    md = (tmp_path / "scale.md").read_text()
    assert "not a speed claim" in md and "| pyro | TraceARMS_ELBO, Bernoulli | 2e3 |" in md
    assert "| pyro | host TraceGraph_ELBO, Bernoulli | 2e3 |" in md
    assert "## Against the host's TraceGraph_ELBO" in md


def test_host_ratios_pair_rows_by_backend_and_size():
    def row(backend, loss, size, seconds, extra, site="bernoulli"):
        return {"backend": backend, "loss": loss, "size": size, "median_s": seconds,
                "extra_bytes": extra, "site": site}  # fmt: skip

    rows = [
        row("numpyro", "host", 10, 1.0, 100), row("numpyro", "trace", 10, 1.1, 160),
        row("numpyro", "graph", 10, 1.3, 140), row("numpyro", "trace", 20, 2.0, 100),
        row("pyro", "host", 10, 2.0, 0), row("pyro", "trace", 10, 2.2, 50),
        row("pyro", "trace", 10, 9.0, 50, site="categorical"),
    ]  # fmt: skip
    got = {(r["backend"], r["loss"], r["size"]): r for r in scale.host_ratios(rows)}
    assert set(got) == {("numpyro", "trace", 10), ("numpyro", "graph", 10), ("pyro", "trace", 10)}
    trace = got["numpyro", "trace", 10]
    assert trace["time_ratio"] == pytest.approx(1.1) and trace["memory_ratio"] == pytest.approx(1.6)
    assert trace["time_met"] and not trace["memory_met"]
    graph = got["numpyro", "graph", 10]
    assert not graph["time_met"] and graph["memory_met"]
    # no memory measured for the host (in-process): no ratio, and not met
    assert got["pyro", "trace", 10]["memory_ratio"] is None
    assert not got["pyro", "trace", 10]["memory_met"]


def test_step_in_fresh_process():
    row = scale._step("numpyro", "bernoulli", "trace", "inverse_cdf", 2, 1e3, 1)
    assert row["isolated"] and row["threads"] == 1 and row["size"] == 1000
    assert row["extra_bytes"] > 0 and row["peak_rss_bytes"] > row["baseline_rss_bytes"]
    assert row["median_s"] > 0 and row["xla_temp_bytes"] > 0


def test_k_sizes_shrink_inverse_cdf_only():
    assert scale.k_sizes("inverse_cdf", 10, [5e4, 2e5]) == [50000, 200000]
    assert scale.k_sizes("inverse_cdf", 50, [5e4, 2e5]) == [2000, 8000]
    assert scale.k_sizes("stick_breaking", 50, [5e4, 2e5]) == [50000, 200000]
