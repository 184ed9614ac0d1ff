"""`scripts/hop_energetics.py`: the fitted Hamiltonian's energy it uses reproduces the fit's own
predictions of all training configurations (so its hop energy changes are the model's), and it
reports one row per distinct NEB band of the shipped garnet model."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from kmc.parametrize.lattice import Configuration, DopantSpec, load_problem
from kmc.system.frameworks import computed_data

pytestmark = pytest.mark.validation

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "hop_energetics.py"


def _script():
    spec = importlib.util.spec_from_file_location("hop_energetics", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hamiltonian_energy_is_the_fit_and_every_band_has_a_row(capsys):
    mod = _script()
    data = computed_data("llzo-cubic")
    a = data["problem_args"]
    p = load_problem(a["structure"], a["mobile"], None, a["hop_cutoff_A"], a["interaction_cutoff_A"],
                     a["exclusion_cutoff_A"], [DopantSpec(**x) for x in a["dopants"]])
    excluded = {o for o in range(len(p.orbits)) if p.orbit_name(o) in data["computed_exclusions"]}
    mu = np.array(data["fit"]["chemical_potentials_eV"])
    used = [c for c in data["configurations"] if c["used_in_fit"]]
    energies = []
    for c in used:
        cfg = Configuration(c["fitted_occupied"], [tuple(x) for x in c["dopants"]])
        comp = [1.0, len(cfg.occupied)] + [sum(e == s.element for e, _, _ in cfg.dopants) for s in p.dopants]
        energies.append(mod.hamiltonian_energy(p, data, excluded, cfg) + mu @ comp)
    assert np.allclose(energies, data["fit"]["predictions_eV"], rtol=0, atol=1e-9)
    assert mod.main(["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == sum(v["n_environments"] for v in data["neb"].values())
    assert all(np.isfinite(r["hamiltonian_dE_eV"]) for r in rows)
