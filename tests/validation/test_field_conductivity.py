"""The field route to conductivity (issue 3): sigma from the drift velocity in an applied field
against the Nernst-Einstein sigma of a separate zero-field run, and the drift beyond linear
response against the exact single-ion drift.

Rate law (design notes): ``Gamma = nu exp(-max(E_KRA + dE/2, dE, 0) / kT)`` with
``dE = -q E . dr`` for the field. For one ion on simple cubic with the field along +x and
``w = q E a``, the forward and backward rates along x are ``nu exp(-max(E_KRA -+ w/2, -+w, 0)/kT)``
and the four lateral ones ``Gamma0 = nu exp(-E_KRA/kT)``, so the exact drift is
``v = a (Gamma_+ - Gamma_-)``:

* while ``w/2 < E_KRA`` this is ``2 a Gamma0 sinh(x/2)`` with ``x = w/kT``: linear response
  ``a Gamma0 x`` for ``x << 1`` and *super*-linear beyond (the mobility v/E grows, it does not
  saturate, because the field keeps lowering a barrier that is still there);
* once ``w/2 >= E_KRA`` the forward barrier is gone (clamped at 0) and ``Gamma_+ = nu``:
  the drift saturates at ``a nu (1 - exp(-x))`` and v/E falls well below its linear-response
  value.
"""
import math

import pytest

from kmc.config import Config
from kmc.constants import KB_EV_K
from kmc.runs.runner import run_config

pytestmark = pytest.mark.validation

NU, T = 1e13, 600.0
KT = KB_EV_K * T


def lattice_gas(field_x: float, seed: int) -> dict:
    cfg = Config.from_dict({
        "lattice": {"builtin": "sc", "supercell": [6, 6, 6]},
        "occupancy": {"filling": 0.5},
        "model": {"barrier_eV": 0.2, "field_V_per_A": [field_x, 0.0, 0.0]},
        "run": {"temperatures_K": [T], "hops_per_ion": 800, "time_origins": 40, "replicas": 32,
                "seed": seed, "msd_points": 2}})
    return run_config(cfg).results[0]


def test_small_field_sigma_agrees_with_zero_field_nernst_einstein():
    x = 0.1  # q E a / kT with a = 1 Å, q = 1
    field = lattice_gas(x * KT, seed=11)
    zero = lattice_gas(0.0, seed=12)
    assert field["field_work_max_over_kT"] == pytest.approx(x)
    s_f, e_f = field["sigma_field_S_cm"], field["sigma_field_err_S_cm"]
    s_0, e_0 = zero["sigma_S_cm"], zero["sigma_err_S_cm"]
    comb = math.hypot(e_f, e_0)
    print(f"sigma_field = {s_f:.4g} ± {e_f:.2g}, zero-field NE sigma = {s_0:.4g} ± {e_0:.2g} "
          f"S/cm: {abs(s_f - s_0) / comb:.2f} combined standard errors apart; NE sigma in the "
          f"field (drift removed) {field['sigma_S_cm']:.4g} ± {field['sigma_err_S_cm']:.2g}")
    assert abs(s_f - s_0) < 3.5 * comb
    assert comb < 0.06 * s_0  # sharp enough to see a 20 % discrepancy
    # the drift-removed Nernst-Einstein sigma in the field is the zero-field value too
    assert abs(field["sigma_S_cm"] - s_0) < 3.5 * math.hypot(field["sigma_err_S_cm"], e_0)
    # and the exact lattice-gas value: D_J = Gamma a^2 (1 - (N-1)/(M-1)) for sc
    gamma = NU * math.exp(-0.2 / KT)
    exact_dj = gamma * (1 - 107 / 215) * 1e-16
    assert abs(zero["D_jump_cm2_s"] - exact_dj) < 4 * zero["D_jump_err_cm2_s"]
    sigma_exact = s_0 / zero["D_jump_cm2_s"] * exact_dj
    assert abs(s_f - sigma_exact) < 4 * e_f


def exact_drift_A_s(e_kra: float, w: float) -> float:
    """a (Gamma_+ - Gamma_-) for one ion, a = 1 Å, from the rate law (independent of kmc)."""
    def rate(dE: float) -> float:
        return NU * math.exp(-max(e_kra + dE / 2, dE, 0.0) / KT)
    return rate(-w) - rate(+w)


def one_ion(e_kra: float, x: float, seed: int, hops: int) -> dict:
    cfg = Config.from_dict({
        "lattice": {"builtin": "sc", "supercell": [4, 4, 4]},
        "occupancy": {"ions": 1},
        "model": {"barrier_eV": e_kra, "field_V_per_A": [x * KT, 0.0, 0.0],
                  "nonlinear_field": x > 1},  # the saturated regime is studied on purpose
        "run": {"temperatures_K": [T], "hops_per_ion": hops, "time_origins": 10,
                "replicas": 16, "seed": seed, "msd_points": 2}})
    return run_config(cfg).results[0]


@pytest.mark.parametrize("e_kra,x,hops,regime", [
    (0.30, 0.2, 16000, "linear"),  # 2 sinh(x/2)/x = 1.0017: linear within 0.2 %
    (0.30, 5.0, 2000, "super-linear: barriers still positive"),
    (0.05, 20.0, 2000, "saturated: forward barrier clamped at zero"),
])
def test_single_ion_drift_matches_exact_rate_law(e_kra, x, hops, regime):
    r = one_ion(e_kra, x, seed=int(100 * x), hops=hops)
    v, err = r["drift_velocity_cm_s"] * 1e8, r["drift_velocity_err_cm_s"] * 1e8  # Å/s
    exact = exact_drift_A_s(e_kra, x * KT)
    linear = NU * math.exp(-e_kra / KT) * x  # a Gamma0 x
    ratio = v / linear
    print(f"{regime}: x = {x}, v = {v:.4g} ± {err:.2g} Å/s, exact {exact:.4g}, "
          f"v / v_linear = {ratio:.3f} (exact {exact / linear:.3f})")
    assert abs(v - exact) < 4 * err and err < 0.05 * exact
    # sigma_field is q n v / E of the same drift
    assert r["sigma_field_err_S_cm"] / r["sigma_field_S_cm"] == pytest.approx(err / v, rel=1e-9)
    if regime == "linear":
        assert ratio == pytest.approx(1.0, abs=4 * err / linear)
    elif regime.startswith("super"):
        assert e_kra - x * KT / 2 > 0
        assert ratio > 2.0  # exact 2 sinh(x/2)/x = 2.42
    else:
        assert e_kra - x * KT / 2 < 0
        assert v == pytest.approx(NU * (1 - math.exp(-x)), rel=4 * err / v)  # a nu: saturated
        assert ratio < 0.2  # v/E far below its linear-response value (exact 0.13)
