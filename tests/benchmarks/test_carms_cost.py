"""The CARMS-cost benchmark's quick mode runs end to end and reports ratios and a verdict."""

import json

from benchmarks import carms_cost


def test_carms_cost_quick(tmp_path):
    out = carms_cost.main(["--quick", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "carms_cost.json").read_text())
    assert report["default_coupling"] == out["default_coupling"] == "stick_breaking_unsorted"
    row = report["results"]["3"]
    quartiles = row["pyro"]["paired_ratio_quartiles"]
    assert len(quartiles) == 3 and all(q > 0 for q in quartiles)
    assert row["variance"]["ratio"] > 0
    assert "CARMS / LOORF" in (tmp_path / "carms_cost.md").read_text()
