"""`scripts/hamiltonian_uncertainty.py --quick`: the shipped model rewritten with its stored
bootstrap fits runs end to end, every fit gives its own conductivity, and a model without a data
file is refused with one sentence."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.validation

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "hamiltonian_uncertainty.py"


def test_hamiltonian_uncertainty_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--fits", "2", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["bootstrap_indices"] == [0, 99]
    assert set(data["rows"]) == {"Li7La3Zr2O12", "Li6.25Ga0.25La3Zr2O12", "Li6.4La3Zr1.4Ta0.6O12"}
    for name, r in data["rows"].items():
        sig = [r["shipped"]["sigma_S_cm"]] + [f["sigma_S_cm"] for f in r["fits"]]
        assert len(sig) == 3 and all(s > 0 for s in sig)
        assert len(set(sig)) == 3, name   # each fit is a different Hamiltonian, the seeds are the same
        assert name in (tmp_path / "table.md").read_text()


def test_a_model_without_data_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", "llzo-cubic-latticegas", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a computed model" in proc.stderr and "Traceback" not in proc.stderr
