"""The multi-sample benchmark runs end to end in ``--quick`` mode and writes its table, JSON and PNG."""

import json
import math

import pytest

from benchmarks import multisample


@pytest.mark.parametrize(
    "backend",
    # NumPyro compiles every loss's step, bound and variance programs (about a minute of CPU)
    [pytest.param("numpyro", marks=pytest.mark.slow), "pyro"],
)
def test_quick_run_end_to_end(tmp_path, backend):
    out = tmp_path / backend
    results = multisample.main(["--quick", "--backend", backend, "--out", str(out)])
    for name in ["multisample.md", "multisample.json", "multisample.png"]:
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "multisample.json").read_text())
    assert saved == json.loads(json.dumps(results))
    runs = saved["runs"]
    assert {r["loss"] for r in runs} == set(multisample.LOSSES)  # N = 8: every loss runs
    assert len(runs) == 2 * len(multisample.LOSSES)  # two seeds
    for r in runs:
        assert math.isfinite(r["test_log_likelihood"]) and math.isfinite(r["final_train_objective"])
        assert r["steps"] == 3
        assert ("grad_variance_end" in r) == (r["seed"] == 0)
    bounds = {r["loss"]: r["bound_size"] for r in runs}
    assert bounds == {
        "iwae-vimco": 8, "iwae-arms": 4, "iwae-disarm": 4, "iwae-vimco-arms": 7, "iwae-vimco-n-1": 7
    }  # fmt: skip
    table = (out / "multisample.md").read_text()
    assert "| binary_vae_linear | 8 | iwae-vimco | 8 | 8 |" in table
    assert "| binary_vae_linear | 8 | iwae-vimco-arms | 8 | 7 |" in table
    assert "| binary_vae_linear | 8 | iwae-vimco-n-1 | 7 | 7 |" in table
    # the paired gap to VIMCO is VIMCO's own zero on its row
    vimco_row = next(r for r in multisample.summarise(runs) if r["loss"] == "iwae-vimco")
    assert vimco_row["vs_vimco"][0] == 0.0
    # --retable re-renders from the JSON alone
    (out / "multisample.md").unlink()
    multisample.main(["--retable", "--out", str(out)])
    assert (out / "multisample.md").read_text() == table


def test_each_loss_spends_its_budget_of_evaluations():
    for evaluations in (4, 8):
        for name, spec in multisample.LOSSES.items():
            if evaluations < spec.min_evaluations:
                continue
            n = spec.num_particles(evaluations)
            layout = multisample.host("pyro").adapter.TraceARMS_IWAE(n, estimator=spec.estimator)
            assert n * layout.spec.num_sets == spec.evaluations_used(evaluations), name
            assert layout.spec.bound_size(n) == spec.bound_size(evaluations), name


@pytest.mark.slow  # compiles two NumPyro steps (about 20 s of CPU)
def test_step_times_are_ratios_to_vimco(tmp_path):
    argv = ["--quick", "--step-times", "--rounds", "2", "--out", str(tmp_path)]
    ratios = multisample.main([*argv, "--losses", "iwae-vimco,iwae-vimco-arms"])
    (row,) = ratios.values()
    assert row["iwae-vimco"] == 1.0 and row["iwae-vimco-arms"] > 0 and row["vimco_seconds"] > 0
    assert json.loads((tmp_path / "step_times.json").read_text()) == ratios
