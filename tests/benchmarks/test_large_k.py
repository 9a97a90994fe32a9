"""The large-K step benchmark runs end to end with tiny sizes and reports a positive ratio."""

import math

from benchmarks import large_k


def test_large_k_benchmark_runs():
    out = large_k.main(["--k", "5", "--size", "6", "--rounds", "1", "--steps", "1"])
    assert set(out) == {"numpyro", "pyro"}
    assert all(math.isfinite(r) and r > 0 for r in out.values())
