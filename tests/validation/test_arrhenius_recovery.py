"""Acceptance test of issue 3: Arrhenius fits recover a known activation energy, and the
uncertainty they report is honest (checked by its coverage over seeded repetitions).

Model: a dilute lattice gas (16 ions on 8^3 simple-cubic sites, a = 2.5 Å) with one barrier
E_KRA = 0.30 eV and no site energies or interactions. Every rate is the same Gamma(T), so the
jump sequence does not depend on T and D*, D_J and sigma*T are all exactly
``const * exp(-0.30 eV / kT)``. Four temperatures 300-600 K, 8 replicas each, 400 measured hops
per ion in 20 blocks (time origins).

What is checked, and why:

* the headline fit uses ``arrhenius_basis = "D_tracer"``: for 16 nearly independent ions D* is
  averaged over 16 ions per block while D_J (and so sigma) is one collective displacement per
  block, about sqrt(16) = 4 times noisier; D* is the quantity that pins Ea to 0.005 eV here;
* ``|Ea - 0.30| < 0.005 eV`` in every one of 20 seeded repetitions;
* coverage: ``Ea_err_eV`` is a 1-sigma standard error, which by definition covers the truth only
  about 68 % of the time (73 % with the fit's max(1, chi2_red) inflation), so it cannot meet a
  ">= 90 % of repetitions" requirement and it would be dishonest to inflate it until it did. The
  JSON therefore also reports the 95 % interval ``Ea_ci_eV``, and the test requires that
  interval to contain 0.30 eV in at least 18 of 20 repetitions (the acceptance criterion), and
  the 1-sigma error to cover it in 8..19 of 20 (binomial band around 0.68-0.73: catches error
  bars that are much too small or much too large);
* the 95 % interval of sigma(300 K) from the sigma*T fit contains the exact finite-lattice
  Nernst-Einstein value in at least 17 of 20 repetitions.
"""
import math

import numpy as np
import pytest

from kmc.config import Config
from kmc.constants import A3_TO_CM3, E_CHARGE_C, KB_EV_K, KB_J_K
from kmc.runs.runner import run_config

pytestmark = pytest.mark.validation

EA, NU, A = 0.30, 1e13, 2.5
L, N = 8, 16
TEMPS = [300.0, 400.0, 500.0, 600.0]
REPS = 20


def config(seed: int) -> Config:
    return Config.from_dict({
        "lattice": {"builtin": "sc", "supercell": [L, L, L], "lattice_constant_A": A},
        "occupancy": {"ions": N},
        "model": {"attempt_frequency_THz": NU / 1e12, "barrier_eV": EA},
        "run": {"temperatures_K": TEMPS, "hops_per_ion": 400, "time_origins": 20,
                "equilibration_hops_per_ion": 5, "replicas": 8, "seed": seed, "msd_points": 2,
                "arrhenius_basis": "D_tracer"}})


def exact_sigma(T: float) -> float:
    """sigma = n q^2 D_J / kT with the exact D_J of a finite lattice gas: every hop moves the
    centre of mass by one lattice vector at random, so E|sum dr|^2 = a^2 E[#hops] and
    D_J = Gamma a^2 (1 - (N - 1)/(M - 1)) on simple cubic (z = 6, d = 3)."""
    M = L ** 3
    gamma = NU * math.exp(-EA / (KB_EV_K * T))
    d_j = gamma * A ** 2 * (1 - (N - 1) / (M - 1)) * 1e-16
    n = N / (M * A ** 3 * A3_TO_CM3)
    return n * E_CHARGE_C ** 2 * d_j / (KB_J_K * T)


def test_activation_energy_recovered_with_honest_error_bars():
    ea, err, ci_hit, one_sigma_hit, s300_hit = [], [], 0, 0, 0
    truth300 = exact_sigma(300.0)
    for rep in range(REPS):
        arr = run_config(config(1000 + rep)).arrhenius
        assert arr["basis"] == "D_tracer" and arr["n_points"] == 4
        ea.append(arr["Ea_eV"])
        err.append(arr["Ea_err_eV"])
        lo, hi = arr["Ea_ci_eV"]
        ci_hit += lo <= EA <= hi
        one_sigma_hit += abs(arr["Ea_eV"] - EA) <= arr["Ea_err_eV"]
        s_lo, s_hi = arr["sigma_300K_ci_S_cm"]
        s300_hit += s_lo <= truth300 <= s_hi
    ea, err = np.array(ea), np.array(err)
    summary = (f"Ea mean {ea.mean():.5f}, sd {ea.std(ddof=1):.5f}, max |dev| "
               f"{np.abs(ea - EA).max():.5f}, mean Ea_err {err.mean():.5f}; 95% CI covered "
               f"{ci_hit}/{REPS}, 1-sigma {one_sigma_hit}/{REPS}, "
               f"sigma(300 K) CI {s300_hit}/{REPS}")
    print(summary)
    assert np.all(np.abs(ea - EA) < 0.005), summary
    assert ci_hit >= 18, summary
    assert 8 <= one_sigma_hit <= 19, summary
    assert s300_hit >= 17, summary
    # the stated error matches the actual scatter of Ea over repetitions (within sampling noise
    # of a standard deviation from 20 values: about ±16 % at 1 sigma)
    assert 0.6 < ea.std(ddof=1) / err.mean() < 1.6, summary
