"""`scripts/validate_frameworks.py --quick`: the model-vs-experiment comparison runs end to end in
under a minute and writes its table, numbers and figures (issue 4 acceptance)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.validation

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "validate_frameworks.py"


def test_validate_frameworks_quick(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 60
    for name in ("table.md", "results.json", "arrhenius.png", "lgps_axes.png", "li_scan.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "table.md").read_text()
    assert table.strip() in proc.stdout and "c-LLZO" in table and "LGPS" in table
    data = json.loads((tmp_path / "results.json").read_text())
    rows = {r["name"]: r for r in data["frameworks"]}
    for r in rows.values():
        assert r["dimensionality"] == 3 and r["sigma_300K_S_cm"] > 0 and r["Ea_eV"] > 0
        assert r["exp_sigma_300K_S_cm"] > 0
    # LGPS: the c channels are faster than the ab plane (barriers 0.17 vs 0.28 eV)
    assert data["lgps_axes"]["c_faster"]
    # single-barrier models have an exact Arrhenius law: Ea = the barrier within errors
    assert abs(rows["c-LLZO"]["Ea_eV"] - 0.30) < 4 * rows["c-LLZO"]["Ea_err_eV"] + 0.01
    assert abs(rows["t-LLZO"]["Ea_eV"] - 0.45) < 4 * rows["t-LLZO"]["Ea_err_eV"] + 0.01
    li = [p["li_pfu"] for p in data["scan"]["points"]]
    assert li == sorted(li, reverse=True) and li[0] == 7.0 and li[-1] == 6.0
