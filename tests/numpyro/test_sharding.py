"""Data-parallel NumPyro: arrays of the data plate sharded over 4 (forced host) devices.

The worker runs in a subprocess because the device count must be forced through ``XLA_FLAGS``
before JAX is imported, and ``tests/conftest.py`` has already imported it here. With the same key,
the sharded loss and gradients must equal the single-device ones up to float64 rounding of the
reductions (which the partitioner may reorder), SVI must compile its update once, and the local
parameters' gradients must stay sharded along the data plate.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVICES = 4
# Reductions over the data plate may be reordered by the partitioner: a few float64 ulps of the
# largest magnitude involved.
TOLERANCE = 64 * np.finfo(np.float64).eps


def _run_worker(*losses: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={DEVICES} --xla_cpu_multi_thread_eigen=false"
    )
    env["JAX_ENABLE_X64"] = "1"
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.numpyro._sharding_worker", *losses],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_equal(result: dict, what: str) -> None:
    assert result["max_abs_diff"] <= TOLERANCE * max(1.0, result["max_abs"]), (what, result)


def _check(report: dict, name: str) -> None:
    assert report["devices"] == DEVICES
    cases = report["cases"]
    for sub in ("None", "32"):
        case = cases[f"{name}-{sub}"]
        _assert_equal(case["value"], f"{name} loss, subsample {sub}")
        _assert_equal(case["grad"], f"{name} gradients, subsample {sub}")
    # without subsampling the local parameters' gradients stay sharded along the data plate
    assert cases[f"{name}-None"]["local_grads_sharded"]
    svi = cases[f"svi-{name}"]
    _assert_equal(svi["losses"], f"{name} SVI losses")
    _assert_equal(svi["params"], f"{name} SVI parameters")
    assert svi["compiles_per_step"][0] >= 1
    assert svi["compiles_per_step"][1:] == [0, 0, 0, 0], "the sharded update recompiled"
    assert svi["state_sharded"]
    spread = cases[f"particles-{name}"]
    _assert_equal(spread["value"], f"{name} loss, particles over devices")
    _assert_equal(spread["grad"], f"{name} gradients, particles over devices")


@pytest.mark.slow  # a subprocess compiling on 1, 2 and 4 forced devices (about 1 min)
def test_sharded_trace_elbo_equals_single_device():
    _check(_run_worker("elbo"), "elbo")


@pytest.mark.slow
def test_sharded_tracegraph_elbo_equals_single_device():
    _check(_run_worker("graph"), "graph")
