"""Dopant charge compensation reproduces the literature formulas; placements are seeded."""
import numpy as np
import pytest

from kmc.exceptions import ConfigError
from kmc.system.dopants import Dopant, apply_dopants, place_blockers
from kmc.system.frameworks import load_framework


@pytest.mark.parametrize("dopants,formula,li_pfu", [
    ([], "Li7La3Zr2O12", 7.0),
    ([Dopant("Ga", "Li", 0.25)], "Li6.25Ga0.25La3Zr2O12", 6.25),        # Li(7-3x)Ga(x)
    ([Dopant("Ta", "Zr", 0.5)], "Li6.5La3Zr1.5Ta0.5O12", 6.5),          # Li(7-x)Zr(2-x)Ta(x)
    ([Dopant("Te", "Zr", 0.25)], "Li6.5La3Zr1.75Te0.25O12", 6.5),       # Li(7-2x)Zr(2-x)Te(x)
    ([Dopant("Ca", "La", 0.5)], "Li7.5La2.5Ca0.5Zr2O12", 7.5),          # +1 Li per Ca
    ([Dopant("Rb", "La", 0.25)], "Li7.5La2.75Rb0.25Zr2O12", 7.5),       # +2 Li per Rb
])
def test_garnet_compensation(dopants, formula, li_pfu):
    cell = apply_dopants(load_framework("llzo-cubic"), dopants, n_cells=8)
    assert cell.formula == formula
    assert cell.mobile_per_formula_unit == pytest.approx(li_pfu)
    assert cell.n_ions == round(li_pfu * 64)


def test_blockers_on_li_sites_and_lgps_analogues():
    cell = apply_dopants(load_framework("llzo-cubic"), [Dopant("Al", "Li1", 0.25)], 8)
    assert cell.blocked_labels == {"Li1": 16}
    lgps = load_framework("lgps")
    assert apply_dopants(lgps, [Dopant("Cl", "S", 0.5)], 4).formula == "Li9.5GeP2S11.5Cl0.5"
    assert apply_dopants(lgps, [Dopant("Sn", "Ge", 1.0)], 4).formula == "Li10SnP2S12"


def test_rounding_to_whole_atoms_is_reported():
    cell = apply_dopants(load_framework("llzo-cubic"), [Dopant("Ta", "Zr", 0.6)], 8)
    # 0.6 x 64 formula units = 38.4 -> 38 Ta: Li = 448 - 38 = 410
    assert cell.formula == "Li6.406La3Zr1.406Ta0.5938O12" and cell.n_ions == 410


@pytest.mark.parametrize("dopant,needle", [
    (Dopant("Ga", "Mn", 0.1), "no site 'Mn'"),
    (Dopant("Ga", "Li", 2.5), "lower the dopant contents"),
    (Dopant("Ta", "Zr", 2.5), "exceeds"),
    (Dopant("Ga", "Li", -0.1), "non-negative"),
    (Dopant("Xx", "Zr", 0.5), "not a chemical element"),
])
def test_bad_dopants(dopant, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_dopants(load_framework("llzo-cubic"), [dopant], 8)


def test_place_blockers_is_seeded_and_respects_orbits():
    labels = np.array(["A"] * 10 + ["B"] * 30)
    a = place_blockers(labels, {"A": 3, "B": 5}, np.random.default_rng(1))
    b = place_blockers(labels, {"A": 3, "B": 5}, np.random.default_rng(1))
    assert np.array_equal(a, b) and a[:10].sum() == 3 and a[10:].sum() == 5
