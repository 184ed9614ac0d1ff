"""kmc parametrize / kmc neb with analytic calculators whose answers are known exactly.

* DoubleWell: the NEB barriers must equal the 1D maximum of the well (scipy, no NEB code).
* LatticeToy: a lattice Hamiltonian with known site energy and pair terms plus a fixed random
  energy per site (noise the model cannot fit); the fit must recover the known terms within its
  bootstrap errors, the attempt frequency must be the tether's sqrt(k/m)/2pi, a pair pushed apart
  by a repulsive core must come out as a computed exclusion, and the written model must run.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from ase import Atoms
from ase.io import read, write
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from kmc.cli.main import main
from kmc.exceptions import ConfigError, ConvergenceError, StructureError
from kmc.parametrize import pipeline
from kmc.parametrize.calculators import Backend
from kmc.parametrize.lattice import load_problem
from kmc.parametrize.neb import NEBSettings, neb_path
from kmc.parametrize.pipeline import ParametrizeSettings, parametrize
from kmc.parametrize.toy import DoubleWell, LatticeToy
from kmc.system.frameworks import load_framework

SITE_B = 0.12                                  # site energy of class B over class A (eV)
PAIRS = {1.5: 0.08, 3.0: -0.03, 4.0: 0.02}     # pair term by site distance (eV)
NOISE = 0.002                                  # random energy per site (eV)
K_TETHER = 0.4                                 # eV/Å^2
SETTINGS = ParametrizeSettings(n_configs=24, n_low_energy=3, n_exclusion_tests=2,
                               neb=NEBSettings(n_images=3, fmax_eV_A=0.05), seed=0)


def toy_cif(path: Path, occ: float = 0.5, host_occ: float = 1.0, mobile: str = "Li") -> Path:
    """Tetragonal a=4, c=3 Å: Cl at (1/2,1/2,0), mobile sites A (0,0,0) and B (0,0,1/2): A-B 1.5 Å."""
    s = Structure(Lattice.tetragonal(4.0, 3.0), [{"Cl": host_occ}, {mobile: occ}, {mobile: occ}],
                  [[0.5, 0.5, 0], [0, 0, 0], [0, 0, 0.5]])
    CifWriter(s).write_file(str(path))
    return path


def toy_backend(cif: Path, **kw) -> Backend:
    p = load_problem(str(cif), "Li", None, 3.1, 4.1, 0.0)
    names = p.class_names
    net = p.network
    pair = {(names[a], names[b], d): PAIRS[d] for a, b, d in p.orbits}
    calc = LatticeToy(net.unit_lattice, net.unit_frac, [names[c] for c in net.unit_class],
                      {names[0]: 0.0, names[1]: SITE_B}, pair, k_eV_A2=K_TETHER, noise_eV=NOISE, **kw)
    return Backend("toy", calc, {"calculator": "toy"})


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    cif = toy_cif(d / "toy.cif")
    model = parametrize(str(cif), "Li", d / "model", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                        exclusion_cutoff_A=0.0, calculator=toy_backend(cif), settings=SETTINGS,
                        cache_dir=d / "cache", log=lambda m: None, name="toy-model")
    return d, model


def rerun_toy(d: Path, **kw):
    """The toy_run fixture's run again, from its cache (``kw``: more arguments of parametrize)."""
    return parametrize(str(d / "toy.cif"), "Li", None, hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                       exclusion_cutoff_A=0.0, calculator=toy_backend(d / "toy.cif"), settings=SETTINGS,
                       cache_dir=d / "cache", log=lambda m: None, name="toy-model", **kw)


# ------------------------------------------------------------------------------------ NEB
def _well_endpoints(x: float = 1.1):
    return [Atoms("Li", positions=[[5 + s * x, 5, 5]], cell=[10, 10, 10], pbc=True) for s in (-1, 1)]


def test_neb_barriers_equal_the_exact_double_well(tmp_path):
    well = DoubleWell()
    exact = well.exact_barriers()
    a, b = _well_endpoints()
    r = neb_path(a, b, Backend("well", well), NEBSettings(n_images=7, fmax_eV_A=0.005),
                 cache_dir=tmp_path, log=lambda m: None)
    assert r.converged
    for key in ("barrier_forward_eV", "barrier_backward_eV", "dE_eV", "E_KRA_eV"):
        assert getattr(r, key) == pytest.approx(exact[key], abs=2e-4), key
    # the engine's convention gives the forward barrier back from E_KRA and dE
    assert max(r.E_KRA_eV + r.dE_eV / 2, r.dE_eV, 0) == pytest.approx(r.barrier_forward_eV, abs=1e-12)


class _Counting(DoubleWell):
    calls = 0

    def calculate(self, *a, **kw):
        type(self).calls += 1
        super().calculate(*a, **kw)


def test_neb_rerun_reads_the_cache(tmp_path):
    a, b = _well_endpoints()
    first = neb_path(a, b, Backend("well", _Counting()), NEBSettings(n_images=5), cache_dir=tmp_path,
                     log=lambda m: None)
    assert _Counting.calls > 0
    _Counting.calls = 0
    again = neb_path(a, b, Backend("well", _Counting()), NEBSettings(n_images=5), cache_dir=tmp_path,
                     log=lambda m: None)
    assert _Counting.calls == 0 and again.energies_eV == first.energies_eV


def test_kmc_neb_prints_barriers_and_writes_the_band(tmp_path, capsys):
    a, b = _well_endpoints()
    write(tmp_path / "i.extxyz", a)
    write(tmp_path / "f.extxyz", b)
    band = tmp_path / "band.extxyz"
    rc = main(["neb", str(tmp_path / "i.extxyz"), str(tmp_path / "f.extxyz"), "--calculator",
               "kmc.parametrize.toy:DoubleWell", "--images", "7", "--fmax", "0.005", "--band", str(band),
               "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    exact = DoubleWell().exact_barriers()
    assert d["E_KRA_eV"] == pytest.approx(exact["E_KRA_eV"], abs=2e-4)
    from ase.io import read

    images = read(str(band), index=":")
    assert len(images) == 9
    e = [im.get_potential_energy() for im in images]
    assert max(e) - e[0] == pytest.approx(d["barrier_forward_eV"], abs=1e-9)


def test_kmc_neb_unconverged_is_an_error_and_writes_nothing(tmp_path, capsys):
    a, b = _well_endpoints()
    write(tmp_path / "i.extxyz", a)
    write(tmp_path / "f.extxyz", b)
    rc = main(["neb", str(tmp_path / "i.extxyz"), str(tmp_path / "f.extxyz"), "--calculator",
               "kmc.parametrize.toy:DoubleWell", "--steps", "2", "--band", str(tmp_path / "band.extxyz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("kmc: error: the NEB did not converge")
    assert not (tmp_path / "band.extxyz").exists()


# ------------------------------------------------------------------------------------ fit
def test_fit_recovers_the_known_hamiltonian(toy_run):
    _, model = toy_run
    terms = model.data["fit"]["terms"]
    names = {"site:Li2_1b": SITE_B, "pair:Li1_1a-Li2_1b@1.50": PAIRS[1.5],
             "pair:Li1_1a-Li1_1a@3.00": PAIRS[3.0], "pair:Li2_1b-Li2_1b@3.00": PAIRS[3.0],
             "pair:Li1_1a-Li1_1a@4.00": PAIRS[4.0], "pair:Li2_1b-Li2_1b@4.00": PAIRS[4.0]}
    assert set(terms) == set(names) and not model.data["fit"]["undetermined"]
    for n, true in names.items():
        v, e = terms[n]["value_eV"], terms[n]["error_eV"]
        assert 0 < e < 0.01, n
        assert abs(v - true) < 3 * e, (n, v, e, true)
    # the unfittable noise: per cell sqrt(ions) x NOISE at most, and not zero
    n_ions = 27
    assert 0.2 * NOISE < model.data["fit"]["cv_rmse_eV_per_cell"] < 2 * NOISE * np.sqrt(n_ions)
    assert model.data["computed_exclusions"] == []


#: dopant-Li terms of the toy (eV) by (dopant, class of the Li site, distance): Ga and Al on A sites
DOPANT = {("Ga", "Li2_1b", 1.5): 0.10, ("Ga", "Li1_1a", 3.0): -0.04, ("Ga", "Li1_1a", 4.0): 0.02,
          ("Al", "Li2_1b", 1.5): -0.06, ("Al", "Li1_1a", 3.0): 0.03, ("Al", "Li1_1a", 4.0): -0.01}


def test_dopants_on_mobile_sites_get_their_own_fitted_terms(tmp_path, capsys):
    """Two dopant species on the mobile A sites with different known dopant-Li terms: the fit
    recovers each, the model file gives each species its own shells in ``[dopant_terms]`` (the
    engine's single ``mobile_blocker`` table would give one species' terms to both), and a run of
    the model places them with exactly those terms (hand count of the energy each Li site takes);
    a third species without computed terms only blocks, with a warning."""
    from kmc.config import Config
    from kmc.exceptions import StructureWarning
    from kmc.parametrize.lattice import parse_dopant
    from kmc.runs.system import build_system, disorder_seed

    cif = toy_cif(tmp_path / "toy.cif")
    model = parametrize(str(cif), "Li", tmp_path / "model", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                        exclusion_cutoff_A=0.0, calculator=toy_backend(cif, dopant_eV=DOPANT),
                        dopants=[parse_dopant("Ga:Li1_1a:2"), parse_dopant("Al:Li1_1a:2")],
                        settings=SETTINGS, cache_dir=tmp_path / "cache", log=lambda m: None, name="toy-doped")
    terms = model.data["fit"]["terms"]
    for (el, c, d), true in DOPANT.items():
        t = terms[f"dopant:{el}(Li1_1a)-{c}@{d:.2f}"]
        assert 0 < t["error_eV"] < 0.01 and abs(t["value_eV"] - true) < 3 * t["error_eV"], (el, c, d, t, true)
    assert model.data["computed_dopant_exclusions"] == []   # ions next to a dopant stay here
    data = tomllib.loads((tmp_path / "model" / "model.toml").read_text())
    assert data["model"]["interactions_eV"]["mobile_blocker"] == []
    shells = {}
    for el in ("Ga", "Al"):
        entry = data["dopant_terms"][el]
        assert entry["site"] == "Li" and "energy_shift_eV" not in entry
        shells[el] = {round(r, 2): j for r, j in entry["shells"]}
        fitted = {d: terms[f"dopant:{el}(Li1_1a)-{c}@{d:.2f}"]["value_eV"] for e, c, d in DOPANT if e == el}
        assert shells[el] == pytest.approx(fitted, abs=1e-6)

    def system(dopants):
        return build_system(Config.from_dict({"lattice": {"framework_file": str(tmp_path / "model" / "model.toml"),
                                                           "supercell": [4, 4, 4]}, "dopants": dopants}))

    sysm = system({"Ga": {"site": "Li1_1a", "per_formula_unit": 0.125},
                   "Al": {"site": "Li1_1a", "per_formula_unit": 0.0625}})
    assert {d.element: d.shells for d in sysm.dopants} == {
        el: data["dopant_terms"][el]["shells"] for el in ("Ga", "Al")}
    blocked, offset = sysm.disorder(7)
    net = sysm.network
    lat, inv = net.lattice, np.linalg.inv(net.lattice)
    # which blocked site holds which element: the replica's own draw, repeated here
    rng = np.random.default_rng(disorder_seed(7))
    taken = np.zeros(net.n_sites, bool)
    expected = np.zeros(net.n_sites)
    placed = {}
    for d in sysm.dopants:
        for lab, k in d.counts.items():
            cand = d.candidates[lab][~taken[d.candidates[lab]]]
            pick = rng.choice(cand, size=k, replace=False)
            taken[pick] = True
            placed[d.element] = placed.get(d.element, 0) + k
            for g in pick:
                f = (net.positions - net.positions[g]) @ inv
                dist = np.round(np.linalg.norm((f - np.rint(f)) @ lat, axis=1), 2)
                expected += [shells[d.element].get(x, 0.0) for x in dist]
    assert np.array_equal(taken, blocked) and placed == {"Ga": 8, "Al": 4}
    assert np.allclose(offset, expected) and np.any(expected > 0) and np.any(expected < 0)
    # an explicit shift wins; a species the model has no terms for only blocks, and says so
    explicit = system({"Ga": {"site": "Li1_1a", "per_formula_unit": 0.125, "energy_shift_eV": 0.05,
                              "shift_radius_A": 1.6}})
    assert explicit.dopants[0].shells is None and explicit.dopants[0].energy_shift_eV == 0.05
    with pytest.warns(StructureWarning, match=r"terms for Al, Ga on Li1_1a \(\[dopant_terms\]\) but none for Mg"):
        mg = system({"Mg": {"site": "Li1_1a", "per_formula_unit": 0.125}})
    assert mg.dopants[0].shells is None and mg.disorder(7)[1] is None
    # what kmc info and kmc run meet
    cfg = tmp_path / "run.toml"
    cfg.write_text('[lattice]\nframework_file = "model/model.toml"\nsupercell = [4, 4, 4]\n'
                   '[dopants]\nGa = { site = "Li1_1a", per_formula_unit = 0.125 }\n'
                   '[run]\ntemperatures_K = [600.0]\nhops_per_ion = 20\nequilibration_hops_per_ion = 5\n'
                   'replicas = 2\nseed = 1\n')
    assert main(["info", str(cfg)]) == 0
    ga = ", ".join(f"{j:+.3f} eV at {r:g} Å" for r, j in data["dopant_terms"]["Ga"]["shells"])
    assert f"dopant-ion energy terms: Ga {ga}" in capsys.readouterr().out
    assert main(["run", str(cfg), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["D_tracer_cm2_s"] > 0


def test_runs_with_different_dopants_are_fitted_as_one_hamiltonian(tmp_path, capsys):
    """``join``: a run with Ga and another with Al (their own plans, caches and NEBs) fitted
    together recover the toy's known terms of both species and of the lattice in one model;
    configurations both runs hold count once (a run joined with itself changes nothing); the
    joint model is rewritten from its data.json byte for byte; runs of another lattice,
    calculator or settings, or a dopant on another host, are refused with one sentence."""
    from kmc.parametrize.lattice import parse_dopant
    from kmc.parametrize.pipeline import rewrite_model
    from kmc.system.frameworks import computed_data

    cif = toy_cif(tmp_path / "toy.cif")
    backend = toy_backend(cif, dopant_eV=DOPANT)
    kw = dict(hop_cutoff_A=3.1, interaction_cutoff_A=4.1, exclusion_cutoff_A=0.0, calculator=backend,
              log=lambda m: None, name="toy-joint")

    def run(out, dopant, **more):
        return parametrize(str(cif), "Li", tmp_path / out, dopants=[parse_dopant(f"{dopant}:Li1_1a:2")],
                           settings=more.pop("settings", SETTINGS), cache_dir=tmp_path / f"cache-{dopant}",
                           **{**kw, **more})

    ga, al = run("ga", "Ga"), run("al", "Al")
    assert "dopant:Al(Li1_1a)-Li2_1b@1.50" not in ga.data["fit"]["terms"]
    joint = run("joint", "Ga", join=[tmp_path / "al" / "data.json"])
    d = joint.data
    n_ga, n_al = (sum(c["used_in_fit"] for c in m.data["configurations"]) for m in (ga, al))
    (j,) = d["joined"]
    assert j["already_here"] + j["configurations"] == len(al.data["configurations"])
    assert d["fit"]["n_configurations"] == n_ga + j["fitted"] and j["fitted"] >= n_al - j["already_here"]
    assert [c.get("source") for c in d["configurations"]].count(str(tmp_path / "al" / "data.json")) == \
        j["configurations"]
    assert [x["element"] for x in d["problem_args"]["dopants"]] == ["Ga", "Al"]
    terms = d["fit"]["terms"]
    for (el, c, dist), true in DOPANT.items():
        t = terms[f"dopant:{el}(Li1_1a)-{c}@{dist:.2f}"]
        assert 0 < t["error_eV"] < 0.01 and abs(t["value_eV"] - true) < 3 * t["error_eV"], (el, c, dist, t, true)
    assert abs(terms["site:Li2_1b"]["value_eV"] - SITE_B) < 3 * terms["site:Li2_1b"]["error_eV"]
    model = tomllib.loads((tmp_path / "joint" / "model.toml").read_text())
    assert set(model["dopant_terms"]) == {"Ga", "Al"}
    assert len(model["provenance"]["joined"]) == 1
    # E_KRA over both runs' bands: a band both computed (same endpoints) counts once
    for hop, v in d["neb"].items():
        files = [b["band_file"] for b in v["bands"]]
        assert len(files) == len(set(files)) == len(set(files) | {b["band_file"] for b in al.data["neb"].get(hop, {}).get("bands", [])}
                                                    | {b["band_file"] for b in ga.data["neb"][hop]["bands"]})
        assert v["E_KRA_mean_eV"] == pytest.approx(np.mean([b["E_KRA_eV"] for b in v["bands"]]))
    assert rewrite_model(d) == (tmp_path / "joint" / "model.toml").read_text()
    # joined with itself: every configuration is already here, the fit is the run's own
    same = run("same", "Ga", join=[tmp_path / "ga"])
    assert same.data["joined"][0]["configurations"] == 0
    assert same.data["fit"]["terms"] == ga.data["fit"]["terms"]
    assert same.data["neb"] == ga.data["neb"]
    # what cannot be fitted together
    bad = {"lattice": dict(interaction_cutoff_A=3.5), "settings": dict(settings=replace(SETTINGS, relax_fmax_eV_A=0.04)),
           "calculator": dict(calculator=Backend("toy", backend.calculator, {"calculator": "other"}))}
    for what, more in bad.items():
        with pytest.raises(ConfigError, match="cannot be fitted with this run's") as err:
            run(f"bad-{what}", "Ga", join=[tmp_path / "al" / "data.json"], **more)
        assert "\n" not in str(err.value) and not (tmp_path / f"bad-{what}").exists()
    with pytest.raises(ConfigError, match="one host per dopant"):
        parametrize(str(cif), "Li", tmp_path / "bad-host", dopants=[parse_dopant("Al:Li2_1b:2")],
                    settings=SETTINGS, cache_dir=tmp_path / "cache-host", join=[tmp_path / "al"], **kw)
    # a builtin computed model is joined by name; a builtin without computed data is refused
    assert pipeline._read_joined("llzo-cubic").data["fit"] == computed_data("llzo-cubic")["fit"]
    with pytest.raises(ConfigError, match="nor a builtin computed model"):
        pipeline._read_joined("llzo-cubic-latticegas")
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert main(["parametrize", str(cif), "--out", str(tmp_path / "bad-junk"), "--join",
                 str(tmp_path / "junk.json"), "--quick"]) == 2
    assert "is not a data.json of `kmc parametrize`" in _one_error_line(capsys)


def test_sites_every_ion_leaves_next_to_a_dopant_are_blocked_by_it(tmp_path):
    """A dopant-Li repulsive core pushes every ion placed 1.5 Å from a Ga off that site during the
    relaxation (the other orbits stay): that orbit's term cannot be fitted and is a computed
    exclusion, like a short Li-Li orbit that relaxes away. The model blocks the sites within
    half-way to the next orbit (2.25 Å) around each placed Ga, and nowhere else."""
    from kmc.config import Config
    from kmc.parametrize.lattice import parse_dopant
    from kmc.runs.system import build_system

    cif = toy_cif(tmp_path / "toy.cif")
    ga = {k: v for k, v in DOPANT.items() if k[0] == "Ga"}
    model = parametrize(str(cif), "Li", tmp_path / "model", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                        exclusion_cutoff_A=0.0, calculator=toy_backend(cif, dopant_eV=ga, dopant_core_A=2.6),
                        dopants=[parse_dopant("Ga:Li1_1a:1")], settings=SETTINGS, cache_dir=tmp_path / "cache",
                        log=lambda m: None, name="toy-doped")
    ev = model.data["dopant_exclusions"]
    assert ev["Ga(Li1_1a)-Li2_1b@1.50"]["configurations"] >= 2 and ev["Ga(Li1_1a)-Li2_1b@1.50"]["ions_stayed"] == 0
    assert all(v["ions_stayed"] == v["ions_placed"] > 0 for k, v in ev.items() if not k.endswith("@1.50"))
    assert model.data["computed_dopant_exclusions"] == ["Ga(Li1_1a)-Li2_1b@1.50"]
    entry = tomllib.loads((tmp_path / "model" / "model.toml").read_text())["dopant_terms"]["Ga"]
    assert entry["exclusion_radius_A"] == 2.25 and [r for r, _ in entry["shells"]] == [3.0, 4.0]
    sysm = build_system(Config.from_dict({"lattice": {"framework_file": str(tmp_path / "model" / "model.toml"),
                                                      "supercell": [4, 4, 4]},
                                          "dopants": {"Ga": {"site": "Li1_1a", "per_formula_unit": 0.125}}}))
    assert sysm.dopants[0].exclusion_radius_A == 2.25
    blocked, _ = sysm.disorder(3)
    net = sysm.network
    plain = replace(sysm.dopants[0], exclusion_radius_A=None)
    ga_sites = np.flatnonzero(replace(sysm, dopants=[plain]).disorder(3)[0])
    assert len(ga_sites) == 8
    lat, inv = net.lattice, np.linalg.inv(net.lattice)
    near = np.zeros(net.n_sites, bool)
    for g in ga_sites:
        f = (net.positions - net.positions[g]) @ inv
        near |= np.linalg.norm((f - np.rint(f)) @ lat, axis=1) < 1.51   # the two B sites along c
    expected = near.copy()
    expected[ga_sites] = True
    assert np.array_equal(blocked, expected) and expected.sum() > len(ga_sites)


@pytest.mark.parametrize("dopant_core", [2.6, 0.0])
def test_a_short_dopant_orbit_no_round_tried_gets_tests(tmp_path, dopant_core):
    """With the 1.5 Å Li-Li pair excluded (a repulsive core) the hard-core sampling never puts an
    ion 1.5 Å from a Ga on a Li site either (the Ga's site counts as occupied), so that dopant term
    would be neither fitted nor excluded. A round of dopant tests places an ion there next to one Ga:
    pushed off by a Ga-Li core it is a computed dopant exclusion; without one the ion stays and the
    toy's known term is fitted."""
    from kmc.parametrize.lattice import parse_dopant

    cif = toy_cif(tmp_path / "toy.cif", occ=1 / 3)
    ga = {k: v for k, v in DOPANT.items() if k[0] == "Ga"}
    orbit = "Ga(Li1_1a)-Li2_1b@1.50"
    model = parametrize(str(cif), "Li", tmp_path / "m", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                        exclusion_cutoff_A=2.0, dopants=[parse_dopant("Ga:Li1_1a:1")],
                        calculator=toy_backend(cif, r_core_A=2.7, core_eV_A2=5.0, dopant_eV=ga,
                                               dopant_core_A=dopant_core),
                        settings=replace(SETTINGS, n_low_energy=0), cache_dir=tmp_path / "c",
                        log=lambda m: None)
    d = model.data
    assert d["computed_exclusions"] == ["Li1_1a-Li2_1b@1.50"]
    tests = [c for c in d["configurations"] if c["kind"] == f"dopant-test:{orbit}"]
    assert len(tests) == SETTINGS.n_exclusion_tests
    for c in tests:   # one Ga, and an ion forced 1.5 Å from it
        ((el, which, idx),) = c["dopants"]
        assert el == "Ga" and which == "mobile"
        assert any(c["occupied"].count(s) for s in _sites_at(cif, idx, 1.5))
    assert d["dopant_exclusions"][orbit]["configurations"] == len(tests)   # no other round placed one
    if dopant_core:
        assert d["computed_dopant_exclusions"] == [orbit] and d["dopant_exclusions"][orbit]["ions_stayed"] == 0
    else:
        assert d["computed_dopant_exclusions"] == [] and f"dopant:{orbit}" not in d["fit"]["undetermined"]
        t = d["fit"]["terms"][f"dopant:{orbit}"]
        assert abs(t["value_eV"] - ga[("Ga", "Li2_1b", 1.5)]) < 3 * t["error_eV"] + 0.01, t


def _sites_at(cif: Path, site: int, dist: float) -> list[int]:
    """The toy's mobile sites ``dist`` (±0.01 Å) from site ``site`` (minimum image)."""
    p = load_problem(str(cif), "Li", None, 3.1, 4.1, 0.0)
    from ase.geometry import find_mic
    r = find_mic(p.pos - p.pos[site], p.cell, pbc=True)[1]
    return [int(i) for i in np.flatnonzero(np.abs(r - dist) < 0.01)]


def test_a_model_is_rewritten_from_its_data_and_its_bootstrap_fits(toy_run):
    """``rewrite_model(data.json)`` gives the written model.toml byte for byte; with one of the
    stored bootstrap fits it gives a model with those term values (what
    scripts/hamiltonian_uncertainty.py runs), everything else the same."""
    from kmc.parametrize.pipeline import rewrite_model
    from kmc.system.frameworks import framework_from_dict

    d, _ = toy_run
    data = json.loads((d / "model" / "data.json").read_text())
    assert rewrite_model(data) == (d / "model" / "model.toml").read_text()
    boots = np.array(data["fit"]["bootstrap_values_eV"])
    names = list(data["fit"]["terms"])
    assert boots.shape == (data["fit"]["n_bootstrap"], len(names))
    # the bootstrap errors are the spread of the stored fits
    sd = boots.std(axis=0, ddof=1)
    assert np.allclose(sd, [data["fit"]["terms"][n]["error_eV"] for n in names], atol=2e-6)
    variant = tomllib.loads(rewrite_model(data, boots[3]))
    original = tomllib.loads(rewrite_model(data))
    k = names.index("site:Li2_1b")
    assert variant["model"]["site_energies_eV"]["Li2_1b"] == pytest.approx(boots[3, k], abs=1e-6)
    assert variant["model"]["barriers_eV"] == original["model"]["barriers_eV"]
    assert variant["model"]["interactions_eV"] != original["model"]["interactions_eV"]
    framework_from_dict(variant)   # a valid model file


def test_attempt_frequency_is_the_tether_frequency(toy_run):
    from ase.data import atomic_masses, atomic_numbers
    from scipy.constants import atomic_mass, electron_volt

    _, model = toy_run
    m = atomic_masses[atomic_numbers["Li"]] * atomic_mass
    exact = np.sqrt(K_TETHER * electron_volt * 1e20 / m) / (2 * np.pi) / 1e12
    for hop in model.data["neb"].values():
        assert hop["attempt_frequency_THz"] == pytest.approx(exact, rel=1e-3)


def test_model_file_has_the_framework_schema_and_runs(toy_run, capsys):
    d, model = toy_run
    text = (d / "model" / "model.toml").read_text()
    data = tomllib.loads(text)
    ref = tomllib.loads((resources.files("kmc.system.structures") / "llzo_cubic.toml").read_text())
    assert data["name"] == "toy-model"           # --name, not a loop variable of the pipeline
    for key in ("name", "description", "formula_unit", "formula_units_per_cell", "mobile_species",
                "cell", "sites", "network", "model"):
        assert key in data and key in ref
    for key in ("attempt_frequency_THz", "site_energies_eV", "barriers_eV", "interactions_eV"):
        assert key in data["model"]
    assert data["model"]["site_energies_eV"]["Li2_1b"] == pytest.approx(
        model.data["fit"]["terms"]["site:Li2_1b"]["value_eV"], abs=1e-6)
    for hop, v in model.data["neb"].items():
        assert data["model"]["barriers_eV"][hop] == pytest.approx(np.mean(
            [b["E_KRA_eV"] for b in v["bands"]]), abs=1e-6)
        assert v["n_environments"] == 3
    shells = dict((round(r, 2), j) for r, j in data["model"]["interactions_eV"]["mobile_mobile"])
    assert shells[1.5] == pytest.approx(model.data["fit"]["terms"]["pair:Li1_1a-Li2_1b@1.50"]["value_eV"], abs=1e-6)
    for r in (3.0, 4.0):  # two orbits (Li1-Li1, Li2-Li2) of equal multiplicity share each shell
        pair = [model.data["fit"]["terms"][f"pair:{c}-{c}@{r:.2f}"]["value_eV"] for c in ("Li1_1a", "Li2_1b")]
        assert shells[r] == pytest.approx(np.mean(pair), abs=1e-6)
    prov = data["provenance"]
    assert prov["n_configurations"] == len(model.data["configurations"])
    assert prov["cv_rmse_meV_per_cell"] == pytest.approx(1000 * model.data["fit"]["cv_rmse_eV_per_cell"], abs=1e-3)
    cfg = d / "run.toml"
    cfg.write_text('[lattice]\nframework_file = "model/model.toml"\nsupercell = [4, 4, 4]\n'
                   '[run]\ntemperatures_K = [600.0]\nhops_per_ion = 20\nequilibration_hops_per_ion = 5\n'
                   'replicas = 2\nseed = 1\n')
    assert main(["run", str(cfg), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["D_tracer_cm2_s"] > 0


def test_rerun_is_bit_identical_from_the_cache(toy_run, tmp_path):
    d, model = toy_run
    backend = toy_backend(d / "toy.cif")
    calls = []
    orig = backend.calculator.calculate

    def counting(*a, **kw):
        calls.append(1)
        return orig(*a, **kw)

    backend.calculator.calculate = counting
    again = parametrize(str(d / "toy.cif"), "Li", None, hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                        exclusion_cutoff_A=0.0, calculator=backend, settings=SETTINGS,
                        cache_dir=d / "cache", log=lambda m: None, name="toy-model")
    assert len(calls) == 2 * len(model.data["neb"])  # only the curvature for the attempt frequency
    strip = lambda t: [x for x in t.splitlines() if not x.startswith(("# Computed", "date", "wall_s"))]
    assert strip(again.model_toml) == strip(model.model_toml)


def test_relaxations_in_worker_processes_give_the_same_model(toy_run, tmp_path, monkeypatch):
    """``workers=2``: every relaxation runs in one of two spawned processes (each with its own
    unpickled calculator), none in this one, and the model is the sequential run's."""
    d, model = toy_run

    def no_relaxation_here(*a, **kw):
        raise AssertionError("a relaxation ran in the main process")

    # (the spawned workers import the module afresh, without this patch)
    monkeypatch.setattr(pipeline, "relax", no_relaxation_here)
    # the sequential run's NEBs (this process runs them): read back, not recomputed, if the
    # relaxed structures they start from are the same to the last digit
    shutil.copytree(d / "cache" / "neb", tmp_path / "cache" / "neb")
    par = parametrize(str(d / "toy.cif"), "Li", None, hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                      exclusion_cutoff_A=0.0, calculator=toy_backend(d / "toy.cif"), settings=SETTINGS,
                      cache_dir=tmp_path / "cache", log=lambda m: None, name="toy-model", workers=2)
    relaxed = sorted(p.name for p in (tmp_path / "cache").glob("relax_*.json"))
    assert len(relaxed) >= par.data["fit"]["n_configurations"]
    assert relaxed == sorted(p.name for p in (d / "cache").glob("relax_*.json"))
    strip = lambda t: [x for x in t.splitlines() if not x.startswith(("# Computed", "date", "wall_s"))]
    assert strip(par.model_toml) == strip(model.model_toml)
    with pytest.raises(ConfigError, match="workers must be a whole number"):
        parametrize(str(d / "toy.cif"), "Li", None, hop_cutoff_A=3.1, calculator="chgnet", workers=0)


def test_nebs_in_worker_processes_give_the_same_model(toy_run, tmp_path, monkeypatch):
    """``workers=2`` with an empty NEB cache: the bands run in the two spawned processes too
    (this process's calculator only gives the attempt frequencies' two force calls per hop
    class), and the model is the sequential run's line for line."""
    d, model = toy_run
    monkeypatch.setattr(pipeline, "relax", lambda *a, **kw: pytest.fail("a relaxation ran here"))
    backend = toy_backend(d / "toy.cif")
    calls = []
    cls = type(backend.calculator)
    orig = cls.calculate

    def counting(self, *a, **kw):
        calls.append(1)
        return orig(self, *a, **kw)

    # patched on the class of this process: the workers import it afresh, uncounted
    monkeypatch.setattr(cls, "calculate", counting)
    par = parametrize(str(d / "toy.cif"), "Li", None, hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                      exclusion_cutoff_A=0.0, calculator=backend, settings=SETTINGS,
                      cache_dir=tmp_path / "cache", log=lambda m: None, name="toy-model", workers=2)
    assert len(calls) == 2 * len(model.data["neb"])
    bands = sorted(p.name for p in (tmp_path / "cache" / "neb").glob("*"))
    assert bands and bands == sorted(p.name for p in (d / "cache" / "neb").glob("*"))
    strip = lambda t: [x for x in t.splitlines() if not x.startswith(("# Computed", "date", "wall_s"))]
    assert strip(par.model_toml) == strip(model.model_toml)


def test_rerun_takes_the_recorded_arrangements_not_a_new_draw(toy_run, tmp_path, monkeypatch):
    """The cache records each round's arrangements (plan_<key>.json) with the random state after it:
    a rerun whose random draws would differ (another numpy, another neighbour order) relaxes
    nothing new, and one killed after the first round draws the later rounds exactly as the
    uninterrupted run did."""
    import shutil

    from kmc.parametrize import pipeline

    d, model = toy_run
    cache = tmp_path / "cache"
    shutil.copytree(d / "cache", cache)
    (plan_file,) = cache.glob("plan_*.json")
    plan = json.loads(plan_file.read_text())
    assert list(plan["rounds"]) == ["first", "included", "second", "low-energy", "dopant-tests"] or \
        list(plan["rounds"]) == ["first", "included", "low-energy", "dopant-tests"]
    recorded = [c["occupied"] for r in plan["rounds"].values() for c in r["configurations"]]
    assert recorded == [c["occupied"] for c in model.data["configurations"]]

    def run(backend):
        return parametrize(str(d / "toy.cif"), "Li", None, hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                           exclusion_cutoff_A=0.0, calculator=backend, settings=SETTINGS,
                           cache_dir=cache, log=lambda m: None, name="toy-model")

    def counting_backend():
        backend = toy_backend(d / "toy.cif")
        calls, orig = [], backend.calculator.calculate
        backend.calculator.calculate = lambda *a, **kw: (calls.append(1), orig(*a, **kw))[1]
        return backend, calls

    strip = lambda t: [x for x in t.splitlines() if not x.startswith(("# Computed", "date", "wall_s"))]
    sample = pipeline._sample
    monkeypatch.setattr(pipeline, "_sample", lambda problem, settings, rng, v: sample(
        problem, settings, np.random.default_rng(12345), v))   # another machine's stream
    backend, calls = counting_backend()
    again = run(backend)
    assert len(calls) == 2 * len(model.data["neb"])          # the attempt-frequency curvature only
    assert strip(again.model_toml) == strip(model.model_toml)
    monkeypatch.setattr(pipeline, "_sample", sample)
    # killed after the first round: the later rounds are drawn again from the recorded state
    plan["rounds"] = {"first": plan["rounds"]["first"]}
    plan_file.write_text(json.dumps(plan))
    backend, calls = counting_backend()
    assert strip(run(backend).model_toml) == strip(model.model_toml)
    assert len(calls) == 2 * len(model.data["neb"])


@pytest.mark.parametrize("core", [2.7, 0.0])
def test_a_pair_that_relaxes_away_is_a_computed_exclusion(tmp_path, core):
    cif = toy_cif(tmp_path / "toy.cif", occ=1 / 3)
    model = parametrize(str(cif), "Li", tmp_path / "m", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                        exclusion_cutoff_A=2.0, calculator=toy_backend(cif, r_core_A=core, core_eV_A2=5.0),
                        settings=ParametrizeSettings(n_configs=12, n_low_energy=0, n_exclusion_tests=2,
                                                     n_environments=1, neb=NEBSettings(n_images=3)),
                        cache_dir=tmp_path / "c", log=lambda m: None)
    short = "Li1_1a-Li2_1b@1.50"
    evidence = model.data["exclusions"][short]
    assert len(evidence) == 2
    net = tomllib.loads((tmp_path / "m" / "model.toml").read_text())["network"]
    if core:
        assert model.data["computed_exclusions"] == [short]
        assert all(e["relaxed_away"] and e["relaxed_distance_A"] > 2.0 for e in evidence)
        assert 1.5 < net["exclusion_distance_A"] < 3.0
        assert f"pair:{short}" not in model.data["fit"]["terms"]
    else:
        assert model.data["computed_exclusions"] == []
        assert not any(e["relaxed_away"] for e in evidence)
        assert net["exclusion_distance_A"] == 0.0
        assert model.data["fit"]["terms"][f"pair:{short}"]["value_eV"] == pytest.approx(PAIRS[1.5], abs=0.02)


def test_joined_runs_judge_the_short_pairs_on_every_placement(tmp_path, capsys):
    """``join`` decides which short pairs relax away on the placements of every run together: a
    run whose own tests saw the 1.5 Å pair relax away every time (a repulsive core) is joined by a
    run in which it stays, so the pair is fitted; the other way round this run's own decision (on
    which its sampling rests) disagrees with the pooled one and the join is refused (exit 2)."""
    cif = toy_cif(tmp_path / "toy.cif", occ=1 / 3)
    short = "Li1_1a-Li2_1b@1.50"
    settings = ParametrizeSettings(n_configs=12, n_low_energy=0, n_exclusion_tests=2, n_environments=1,
                                   neb=NEBSettings(n_images=3))

    def run(out, core, **kw):   # other seeds: other arrangements (one both hold would count once)
        return parametrize(str(cif), "Li", tmp_path / out, hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                           exclusion_cutoff_A=2.0, settings=replace(settings, seed=int(10 * core)),
                           log=lambda m: None,
                           calculator=toy_backend(cif, r_core_A=core, core_eV_A2=5.0),
                           cache_dir=tmp_path / f"c{core}", **kw)

    away, stays = run("away", 2.7), run("stays", 0.0)
    assert away.data["computed_exclusions"] == [short] and stays.data["computed_exclusions"] == []
    joint = run("joint", 0.0, join=[tmp_path / "away"])
    ev = joint.data["pooled_exclusions"][short]
    by = ev["by_run"]
    assert by[str(tmp_path / "away")]["placed"] == by[str(tmp_path / "away")]["relaxed_away"] >= 2
    assert by["this run"]["relaxed_away"] < by["this run"]["placed"]
    assert ev["placed"] == sum(r["placed"] for r in by.values())
    assert joint.data["computed_exclusions"] == []
    assert f"pair:{short}" in joint.data["fit"]["terms"]
    assert sum(c.get("source") is not None and c["used_in_fit"] for c in joint.data["configurations"]) > 0
    # the run that excluded the pair cannot be the one that joins the other
    with pytest.raises(ConfigError, match="join the runs from one whose own tests agree") as err:
        run("refused", 2.7, join=[tmp_path / "stays"])
    assert "\n" not in str(err.value) and f"{short}: " in str(err.value)
    assert not (tmp_path / "refused").exists()


# ------------------------------------------------------------------------------------ bad input
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kmc: error: "), err
    return err[0]


def test_bad_inputs_exit_2_with_one_sentence_and_write_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    no_li = toy_cif(tmp_path / "nali.cif", mobile="Na")
    assert main(["parametrize", str(no_li), "--out", str(out), "--calculator", "kmc.parametrize.toy:DoubleWell",
                 "--quiet"]) == 2
    assert "contains no Li" in _one_error_line(capsys)
    disordered = toy_cif(tmp_path / "dis.cif", host_occ=0.5)
    assert main(["parametrize", str(disordered), "--out", str(out), "--quiet"]) == 2
    assert "partial occupancies" in _one_error_line(capsys)
    good = toy_cif(tmp_path / "toy.cif")
    assert main(["parametrize", str(good), "--out", str(out), "--calculator", "nope", "--quiet"]) == 2
    assert "unknown calculator" in _one_error_line(capsys)
    assert main(["parametrize", str(good), "--out", str(out), "--calculator", "no_such_mod:Calc", "--quiet"]) == 2
    assert "cannot be imported" in _one_error_line(capsys)
    assert main(["parametrize", str(good), "--out", str(out), "--workers", "0", "--quiet"]) == 2
    assert "workers must be a whole number of at least 1" in _one_error_line(capsys)
    monkeypatch.setitem(sys.modules, "chgnet", None)  # the [mlip] extra not installed
    assert main(["parametrize", str(good), "--out", str(out), "--quiet"]) == 2
    assert '.[mlip]' in _one_error_line(capsys)
    assert main(["parametrize", "nonexistent.cif", "--out", str(out), "--quiet"]) == 2
    assert "neither a builtin framework" in _one_error_line(capsys)
    assert main(["neb", str(good), str(good), "--calculator", "kmc.parametrize.toy:DoubleWell"]) == 2
    assert "no atom moves" in _one_error_line(capsys)
    assert not out.exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    assert main(["parametrize", str(good), "--out", str(tmp_path / "full"), "--quiet"]) == 2
    assert "not an empty directory" in _one_error_line(capsys)


def test_unconverged_relaxation_leaves_no_model(tmp_path):
    cif = toy_cif(tmp_path / "toy.cif", occ=1 / 3)
    with pytest.raises(ConvergenceError, match="did not converge"):
        parametrize(str(cif), "Li", tmp_path / "m", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                    exclusion_cutoff_A=2.0, calculator=toy_backend(cif, r_core_A=2.7),
                    settings=ParametrizeSettings(n_configs=4, relax_max_steps=1), cache_dir=tmp_path / "c",
                    log=lambda m: None)
    assert not (tmp_path / "m").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]


def test_unconverged_neb_leaves_no_model(tmp_path):
    cif = toy_cif(tmp_path / "toy.cif")
    with pytest.raises(ConvergenceError, match="NEB did not converge"):
        parametrize(str(cif), "Li", tmp_path / "m", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                    exclusion_cutoff_A=0.0, calculator=toy_backend(cif),
                    settings=ParametrizeSettings(n_configs=8, n_low_energy=0, n_environments=1,
                                                 neb=NEBSettings(n_images=3, max_steps=2)),
                    cache_dir=tmp_path / "c", log=lambda m: None)
    assert not (tmp_path / "m").exists()


def test_full_sublattice_without_vacancies_is_an_error(tmp_path):
    cif = toy_cif(tmp_path / "full.cif", occ=1.0)
    with pytest.raises(StructureError, match="only one arrangement"):
        parametrize(str(cif), "Li", None, hop_cutoff_A=3.1, calculator=toy_backend(toy_cif(tmp_path / "t.cif")),
                    settings=ParametrizeSettings(max_vacancies=0), log=lambda m: None)


def test_a_real_process_exits_2_without_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kmc.cli.main", "parametrize", str(tmp_path / "none.cif"), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("kmc: error: ")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("doped", [False, True])
def test_toy_forces_are_the_gradient_of_its_energy(tmp_path, doped):
    """On the mobile atoms (the dopants feel no force by design)."""
    from kmc.parametrize.lattice import load_problem, parse_dopant

    cif = toy_cif(tmp_path / "toy.cif", occ=1 / 3)
    kw = dict(dopant_eV=DOPANT, dopant_core_A=2.0) if doped else {}
    calc = toy_backend(cif, r_core_A=2.7, **kw).calculator
    p = load_problem(str(cif), "Li", None, 3.1, 4.1, 0.0, [parse_dopant("Ga:Li1_1a:2")] if doped else [])
    rng = np.random.default_rng(1)
    a = p.atoms(p.random_configuration(rng, {"Ga": 2} if doped else None))
    a.positions += rng.normal(0, 0.3, a.positions.shape)
    a.calc = calc
    f = a.get_forces()
    fd = np.zeros_like(f)
    mobile = [i for i, s in enumerate(a.get_chemical_symbols()) if s == "Li"]
    assert not doped or len(mobile) < len(a) - 27   # Cl host atoms and the Ga are there too
    f = f[mobile]
    for i in mobile:
        for k in range(3):
            e = []
            for h in (1e-5, -1e-5):
                b = a.copy()
                b.calc = calc
                b.positions[i, k] += h
                e.append(b.get_potential_energy())
            fd[i, k] = -(e[0] - e[1]) / 2e-5
    fd = fd[mobile]
    assert np.abs(f - fd).max() < 1e-6 * max(1.0, np.abs(f).max())


# ------------------------------------------------------------------------------------ sampling, mapping
def test_weighted_placement_fills_the_heavy_sites_first():
    from kmc.engine.placement import place_hard_core

    nbrs = [np.zeros(0, dtype=np.int64)] * 200
    heavy = np.arange(200) < 100
    occ = place_hard_core(200, nbrs, np.zeros(200, bool), 60, np.random.default_rng(0),
                          np.where(heavy, 1000.0, 1.0))
    assert occ.sum() == 60 and occ[heavy].sum() >= 58   # 1000:1 odds per draw


def test_garnet_second_round_spreads_the_tetrahedral_occupancy():
    """With every pair shorter than 1.7 Å avoided, Li7 garnet (56 Li on 24 tetrahedral 24d and 96
    octahedral 96h sites) jams at 8 Li on 24d with all 48 cages filled (the tetragonal count); with
    only the same-cage 96h pair avoided, the class weights spread the 24d count over 8..24."""
    p = load_problem("llzo-cubic-latticegas", "Li", None, None, 4.0, None)
    rng = np.random.default_rng(0)
    n_tet = lambda c: int((p.site_class[c.occupied] == 0).sum())  # noqa: E731
    assert {n_tet(p.random_configuration(rng)) for _ in range(5)} <= {8, 9, 10}
    cage = [o for o in p.short_orbits if p.orbits[o][2] < 1.0]
    assert len(cage) == 1
    low = [n_tet(p.random_configuration(rng, avoid=cage, class_weights=[0.05, 1.0])) for _ in range(5)]
    high = [n_tet(p.random_configuration(rng, avoid=cage, class_weights=[20.0, 1.0])) for _ in range(5)]
    assert max(low) <= 12 and min(high) >= 18


def test_a_relaxed_ion_is_fitted_on_the_site_it_relaxed_onto(tmp_path):
    from kmc.parametrize.lattice import Configuration
    from kmc.parametrize.pipeline import _fitted

    cif = toy_cif(tmp_path / "toy.cif", occ=1 / 3)
    p = load_problem(str(cif), "Li", None, 3.1, 4.1, 0.0)
    cfg = p.random_configuration(np.random.default_rng(1))
    atoms = p.atoms(cfg)
    free = int(np.flatnonzero(~np.isin(np.arange(len(p.pos)), cfg.occupied))[0])
    moved = atoms.positions.copy()
    n_host = len(atoms) - len(cfg.occupied)
    moved[n_host] = p.pos[free] + [0.1, 0.0, 0.0]            # ion 0 relaxed onto a free site
    m = p.map_relaxed(cfg, moved, 0.5)
    assert m["left_sites"] == [cfg.occupied[0]] and m["mapped"] and m["mapped_sites"][0] == free
    f = _fitted(p, cfg, m, set())
    assert isinstance(f, Configuration) and f.occupied == sorted([free] + cfg.occupied[1:])
    between = moved.copy()
    between[n_host] = p.pos[free] + [2.0, 0.0, 0.0]            # 2 Å from every site: between sites
    m2 = p.map_relaxed(cfg, between, 0.5)
    assert not m2["mapped"] and _fitted(p, cfg, m2, set()) is None


# ------------------------------------------------------------------------------------ committed LLZO model
REPO = Path(__file__).resolve().parents[1]
LLZO_CACHE = REPO / "data/parametrize/llzo-cubic/cache"


def test_committed_llzo_model_is_its_data_and_runs():
    """The shipped computed c-LLZO model (builtin ``llzo-cubic``, CHGNet) says what its data
    says (fit terms, barriers, exclusions), every relaxation behind it is in the committed cache
    (data/parametrize/llzo-cubic), it carries its parent's cited experiment and dopant sites, and
    it runs as a builtin; ``kmc info`` lists its provenance."""
    from kmc.cli.info import builtins_info
    from kmc.system.frameworks import computed_data, framework_file

    toml = tomllib.loads(framework_file("llzo-cubic").read_text())
    data = computed_data("llzo-cubic")
    m, h = toml["model"], toml["hamiltonian"]
    for name, t in data["fit"]["terms"].items():
        assert h["terms"][name][0] == pytest.approx(t["value_eV"], abs=1e-6)
    assert m["site_energies_eV"]["Li2"] == pytest.approx(data["fit"]["terms"]["site:Li2"]["value_eV"], abs=1e-6)
    for hop, v in data["neb"].items():
        assert m["barriers_eV"][hop] == pytest.approx(v["E_KRA_mean_eV"], abs=1e-6)
    assert h["computed_exclusions"] == data["computed_exclusions"] == ["Li2-Li2@0.87"]
    assert toml["provenance"]["n_configurations"] == len(data["configurations"])
    assert sum(c["used_in_fit"] for c in data["configurations"]) == data["fit"]["n_configurations"]
    assert len(list(LLZO_CACHE.glob("relax_*.json"))) >= len(data["configurations"])
    for b in (b for v in data["neb"].values() for b in v["bands"]):
        assert (REPO / b["band_file"]).is_file()
    parent = load_framework(toml["provenance"]["structure"])
    assert parent.name == "llzo-cubic-latticegas"
    assert toml["experiment"] == parent.experiment and toml["dopant_sites"] == parent.dopant_sites
    info = builtins_info()["frameworks"]
    assert info["llzo-cubic"]["provenance"]["calculator"] == info["llzo-tetragonal"]["provenance"]["calculator"] == "chgnet"
    out = subprocess.run([sys.executable, "-m", "kmc", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "llzo-cubic" in out.stdout and "computed with chgnet" in out.stdout
    assert computed_data("llzo-cubic-latticegas") is None and computed_data("llzo-tetragonal") == data
    cfg = {"lattice": {"builtin": "llzo-cubic", "supercell": [1, 1, 1]},
           "run": {"temperatures_K": [600.0], "hops_per_ion": 20, "replicas": 2, "seed": 1}}
    from kmc.config import Config
    from kmc.runs.runner import run_config

    res = run_config(Config.from_dict(cfg))
    assert res.network["n_ions"] == 56 and res.results[0]["D_tracer_cm2_s"] > 0


def test_sites_far_from_the_minima_are_named_as_the_problem():
    from kmc.parametrize.pipeline import _check_mappable

    res = [{"mapping": {"max_mapped_distance_A": d}} for d in (0.73, 0.99, 0.8)]
    with pytest.raises(StructureError, match=r"0.73-0.99 Å from the nearest site .* relaxed with the same"):
        _check_mappable(res, [], 0.5)
    _check_mappable(res[:1] + [{"mapping": {"max_mapped_distance_A": 0.2}}], [1], 0.5)  # too few: the fit says so


# ------------------------------------------------------------------------------------ known structures, cell relaxation
def _feature_key(p, cfg):
    f = p.features(cfg)
    return tuple(f["class"].tolist()) + tuple(f["pair"].tolist())


def test_an_included_structure_is_mapped_in_any_setting(tmp_path):
    """``--include``: the arrangement of a known structure, given shifted, strained and in a file,
    comes back as the same arrangement (up to the lattice's own translations), and a structure of
    another framework is refused with a sentence."""
    from pymatgen.core import Structure

    cif = toy_cif(tmp_path / "toy.cif")
    p = load_problem(str(cif), "Li", None, 3.1, 4.1, 0.0)
    rng = np.random.default_rng(3)
    cfg = p.random_configuration(rng)
    species = list(p.host_species) + ["Li"] * len(cfg.occupied)
    pos = np.vstack([p.host_positions, p.pos[cfg.occupied]])
    s = Structure(Lattice(p.cell * 1.03), species, pos @ np.linalg.inv(p.cell))    # strained cell
    s.translate_sites(list(range(len(s))), [0.5 / p.network.supercell[0], 0.0, 0.13], frac_coords=True)
    s.perturb(0.05, min_distance=0.0)
    s.to(filename=str(tmp_path / "known.cif"))
    got = p.configuration_from_structure(str(tmp_path / "known.cif"), 0.5)
    assert got.kind == "included:known.cif" and len(got.occupied) == len(cfg.occupied)
    assert _feature_key(p, got) == _feature_key(p, cfg)
    other = Structure(Lattice(p.cell), ["Br"] * len(p.host_species), p.host_positions,
                      coords_are_cartesian=True)
    other.to(filename=str(tmp_path / "other.cif"))
    with pytest.raises(StructureError, match="framework"):
        p.configuration_from_structure(str(tmp_path / "other.cif"), 0.5)


def test_garnet_tetragonal_order_maps_onto_the_cubic_lattice():
    """The committed ordered t-LLZO (public GGA structure plus its vacancy) is one cubic-lattice
    arrangement: 56 Li, 8 of them on 24d sites of one orientation, no 96h-96h pair in one cage."""
    p = load_problem("llzo-cubic-latticegas", "Li", None, None, 4.0, None)
    cfg = p.configuration_from_structure(load_framework("llzo-tetragonal").start_structure, 0.5)
    assert len(cfg.occupied) == 56
    tet = [s for s in cfg.occupied if p.class_names[p.site_class[s]] == "Li1"]
    assert len(tet) == 8
    frac = p.pos[tet] / p.cell[0, 0]
    quarter = np.isclose(frac % 0.5, 0.25, atol=0.01)     # the 24d site's 4-bar axis coordinate
    assert quarter.sum(axis=0).max() == 8                  # all eight share one axis
    excluded = [o for o in range(len(p.orbits)) if p.orbits[o][2] < 1.0]
    assert p.features(cfg)["pair"][excluded].sum() == 0


def test_cell_relaxation_needs_a_stress_and_lowers_the_energy():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from kmc.exceptions import ConfigError
    from kmc.parametrize.neb import relax

    atoms = bulk("Cu", "fcc", a=3.75, cubic=True)           # strained: EMT's a is ~3.59 Å
    calc = EMT()
    fixed, _ = relax(atoms, calc, 0.01, 100)
    free, steps = relax(atoms, calc, 0.01, 200, cell=True)
    fixed.calc, free.calc = calc, calc
    assert free.get_potential_energy() < fixed.get_potential_energy() - 0.01
    assert free.cell.lengths()[0] == pytest.approx(3.59, abs=0.03) and steps > 0
    with pytest.raises(ConfigError, match="no stress"):
        relax(atoms, DoubleWell(), 0.01, 10, cell=True)


def test_site_tolerance_above_half_the_shortest_allowed_pair_is_refused(tmp_path):
    """The nearest-site mapping is unambiguous only within half the shortest distance between two
    sites that may both be occupied (toy: the 1.5 Å A-B pair, so at most 0.75 Å)."""
    from kmc.exceptions import ConfigError

    cif = toy_cif(tmp_path / "toy.cif")
    with pytest.raises(ConfigError, match=r"more than half .* \(1.50 Å\); use at most 0.75 Å"):
        parametrize(str(cif), "Li", tmp_path / "m", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                    exclusion_cutoff_A=0.0, calculator=toy_backend(cif),
                    settings=ParametrizeSettings(n_configs=4, n_low_energy=0, site_tolerance_A=0.8),
                    cache_dir=tmp_path / "c", log=lambda m: None)
    assert not (tmp_path / "m").exists()


def test_shipped_llzo_model_reproduces_its_training_energies():
    """The engine's energy of every fitted configuration under the shipped ``llzo-cubic`` model
    (site energies and pair shells as the run uses them, and the Ga, Ta, Al and Nb terms as a run
    applies them: Ga and Al as blockers, all through their ``[dopant_terms]`` shells) reproduces the
    CHGNet energies it was fitted to: residual RMSE equal to the reported training RMSE and below the
    reported CV error (the chemical potentials of the Li and dopant counts aside: a linear
    function of the composition, as in the fit)."""
    from dataclasses import replace

    from kmc.config import Config
    from kmc.engine.model import BLOCKER, ION
    from kmc.parametrize.lattice import load_problem, parse_dopant
    from kmc.runs.system import build_system, dopant_field
    from kmc.system.frameworks import computed_data

    data = computed_data("llzo-cubic")
    terms = load_framework("llzo-cubic").data["dopant_terms"]
    dopants = [d["element"] for d in data["problem_args"]["dopants"]]
    assert dopants == ["Ga", "Ta", "Al", "Nb"]
    problem = load_problem("llzo-cubic-latticegas", "Li", None, None, 4.0, None,
                           [parse_dopant(f"{d['element']}:{d['host']}:2") for d in data["problem_args"]["dopants"]])
    system = build_system(Config.from_dict({"lattice": {"builtin": "llzo-cubic", "supercell": [1, 1, 1]}}))
    net = system.network
    assert np.allclose(problem.pos, net.positions, atol=1e-6)   # the same site numbering
    e_dft, e_model, comp = [], [], []
    for c in data["configurations"]:
        if not c["used_in_fit"]:
            continue
        occ = np.zeros(net.n_sites, dtype=np.int8)
        occ[c["fitted_occupied"]] = ION
        offset = np.zeros(net.n_sites)
        for el, which, idx in c["dopants"]:
            pos = net.positions[idx] if which == "mobile" else problem.host_positions[idx]
            if which == "mobile":
                occ[idx] = BLOCKER
            offset += dopant_field(net, pos[None, :], terms[el]["shells"])
        e_dft.append(c["energy_eV"])
        e_model.append(replace(system.model, site_energy_offset_eV=offset).energy(occ))
        comp.append([1.0, len(c["fitted_occupied"])] + [sum(e == el for e, _, _ in c["dopants"]) for el in dopants])
    assert len(e_dft) == data["fit"]["n_configurations"]
    assert sum(1 for c in comp if any(c[2:])) > 100   # most of them doped
    resid = np.array(e_dft) - np.array(e_model)
    comp = np.array(comp)
    resid -= comp @ np.linalg.lstsq(comp, resid, rcond=None)[0]
    rmse = float(np.sqrt(np.mean(resid ** 2)))
    # equal up to the 1e-6 eV rounding of the written terms
    assert rmse == pytest.approx(data["fit"]["train_rmse_eV_per_cell"], rel=1e-4)
    assert rmse < data["fit"]["cv_rmse_eV_per_cell"]


def test_committed_lgps_model_is_a_builtin_with_its_data():
    """The computed LGPS model (builtin ``lgps-computed``, CHGNet on the ordered Ge/P cell) says
    what its data says, every NEB band behind it is in the committed cache, ``kmc info`` lists
    its provenance, and it runs as a builtin (per-axis D_J)."""
    from kmc.cli.info import builtins_info
    from kmc.config import Config
    from kmc.runs.runner import run_config
    from kmc.system.frameworks import computed_data, framework_file

    toml = tomllib.loads(framework_file("lgps-computed").read_text())
    data = computed_data("lgps-computed")
    for hop, v in data["neb"].items():
        assert toml["model"]["barriers_eV"][hop] == pytest.approx(v["E_KRA_mean_eV"], abs=1e-6)
        assert all((REPO / b["band_file"]).is_file() for b in v["bands"])
    for name, t in data["fit"]["terms"].items():
        assert toml["hamiltonian"]["terms"][name][0] == pytest.approx(t["value_eV"], abs=1e-6)
    info = builtins_info()["frameworks"]["lgps-computed"]
    assert info["provenance"]["calculator"] == "chgnet" and "lgps_ordered.cif" in info["provenance"]["structure"]
    res = run_config(Config.from_dict({"lattice": {"builtin": "lgps-computed", "supercell": [2, 2, 1]},
                                       "run": {"temperatures_K": [600.0], "hops_per_ion": 20, "replicas": 2,
                                               "seed": 1}}))
    assert res.network["n_ions"] == 80 and res.results[0]["D_jump_zz_cm2_s"] > 0


def test_cif_occupancies_printed_to_a_few_digits_give_whole_ions():
    """The ordered LGPS CIF carries the builtin's Li occupancies to five digits (Li20.00004 per
    cell): the problem counts 20 Li and the formula unit Li10GeP2S12 (Z = 2), not Li20.00004..."""
    from pymatgen.core import Composition

    p = load_problem(str(REPO / "data/parametrize/lgps/lgps_ordered.cif"), "Li", None, 3.2, 4.0, 2.0)
    assert p.n_nominal == 20 and p.z_per_cell == 2.0
    assert Composition(p.formula_unit) == Composition("Li10GeP2S12")


def test_a_band_whose_endpoints_relax_into_one_minimum_is_replaced(tmp_path, monkeypatch):
    """An environment whose NEB endpoints relax into one minimum (flat band, relaxed path much
    shorter than the hop) is no hop of its class: it is skipped, recorded, and the next
    environment is used; only when every candidate is flat do the flat bands count."""
    import dataclasses

    import kmc.parametrize.pipeline as pl

    real, calls = pl.neb_path, []

    def first_flat(init, fin, *a, **kw):
        res = real(init, fin, *a, **kw)
        calls.append(1)
        if len(calls) % 4 == 1:    # the first band of each hop class (3 used + 1 skipped each)
            return dataclasses.replace(res, barrier_forward_eV=0.0, barrier_backward_eV=2e-4, E_KRA_eV=1e-4,
                                       path_A=[0.0, 0.01 * res.hop_length_A])
        return res

    monkeypatch.setattr(pl, "neb_path", first_flat)
    cif = toy_cif(tmp_path / "toy.cif")
    model = parametrize(str(cif), "Li", None, hop_cutoff_A=3.1, interaction_cutoff_A=4.1, exclusion_cutoff_A=0.0,
                        calculator=toy_backend(cif), settings=SETTINGS, cache_dir=tmp_path / "cache",
                        log=lambda m: None)
    for v in model.data["neb"].values():
        assert len(v["flat_bands_skipped"]) == 1 and v["n_environments"] == 3
        skipped = v["flat_bands_skipped"][0]
        assert (skipped["configuration"], skipped["from_site"]) not in {(b["configuration"], b["from_site"])
                                                                        for b in v["bands"]}
        assert all(b["E_KRA_eV"] > 1e-3 for b in v["bands"])


def test_hop_check_is_small_where_the_lattice_hamiltonian_is_exact(toy_run):
    """The toy's energy is a lattice Hamiltonian plus tethers to the sites: every NEB band (not
    fitted) is then the single hop it was started as, and the fitted terms give the energy change
    between its relaxed endpoints within the fit's noise (0.002 eV per site). The check
    ``kmc parametrize`` stores (``hop_energy_check``) says so."""
    _, model = toy_run
    hc = model.data["hop_energy_check"]
    bands = [b for v in model.data["neb"].values() for b in v["bands"]]
    assert hc["n_bands"] == hc["n_mapped"] == hc["n_single_hop"] == len(bands) >= 2
    assert hc["n_rearranged"] == hc["n_same_arrangement"] == 0
    assert all(b["single_hop"] and b["ions_rearranged"] == 1 for b in bands)
    # a hop changes two sites' random energies (NOISE each): 3 sigma of their difference
    bound = 3 * np.sqrt(2) * NOISE
    assert hc["rms_diff_eV"] < bound, hc      # measured 2.0 meV
    # the energy change is the band's own sign and size, hop by hop (a sign error fails here)
    assert any(abs(b["dE_eV"]) > 0.05 for b in bands)
    for b in bands:
        assert b["hamiltonian_dE_eV"] == pytest.approx(b["dE_eV"], abs=bound)


def test_concerted_knockoff_events_get_their_own_bands_and_run(tmp_path, capsys):
    """``interstitialcy``: each knock-off class (an ion on B pushes the ion on the next A on to
    the B beyond, along c) gets NEB bands in which both ions move together. Every band joins the
    configuration to the one with the pusher's site empty, the landing site full and the middle
    site still full (mapped from the relaxed endpoints: the intended event), and the toy's known
    Hamiltonian gives the band's energy change within the noise of the two sites; the model file
    declares the events and their E_KRA, a run of it includes them, and the written model is
    rewritten from its data byte for byte. An unknown site class is refused (CLI: exit 2)."""
    from kmc.config import Config
    from kmc.parametrize.pipeline import rewrite_model
    from kmc.runs.system import build_system

    cif = toy_cif(tmp_path / "toy.cif")
    ko = {"interstitial": ["Li2_1b"], "lattice": ["Li1_1a"], "max_angle_deg": 5.0}
    model = parametrize(str(cif), "Li", tmp_path / "model", hop_cutoff_A=3.1, interaction_cutoff_A=4.1,
                        exclusion_cutoff_A=0.0, calculator=toy_backend(cif), settings=SETTINGS,
                        cache_dir=tmp_path / "cache", log=lambda m: None, name="toy-ko", interstitialcy=ko)
    data = model.data
    assert data["interstitialcy"] == ko
    name = "knockoff:Li2_1b-Li1_1a-Li2_1b@1.50+1.50"
    assert name in data["neb"], list(data["neb"])
    bands = data["neb"][name]["bands"]
    assert len(bands) == SETTINGS.n_environments
    for b in bands:
        cfg = data["configurations"][b["configuration"]]
        occ = set(cfg["fitted_occupied"])
        assert b["from_site"] in occ and b["mid_site"] in occ and b["to_site"] not in occ
        assert b["single_hop"], b["endpoint_sites"]          # the event itself, both endpoints mapped
        # the toy's truth: its lattice Hamiltonian (noise 2 meV per site, two sites change)
        assert abs(b["hamiltonian_dE_eV"] - b["dE_eV"]) < 3 * np.sqrt(2) * NOISE
    # the model's attempt frequency stays the single hops' (the knock-offs keep theirs in data.json)
    hops = [v["attempt_frequency_THz"] for k, v in data["neb"].items() if not k.startswith("knockoff:")]
    assert data["attempt_frequency_THz"] == pytest.approx(np.mean(hops))
    text = (tmp_path / "model" / "model.toml").read_text()
    toml = tomllib.loads(text)
    assert toml["network"]["interstitialcy"] == ko
    assert toml["model"]["barriers_eV"][name] == pytest.approx(data["neb"][name]["E_KRA_mean_eV"], abs=1e-6)
    assert rewrite_model(json.loads((tmp_path / "model" / "data.json").read_text())) == text
    system = build_system(Config.from_toml(f'[lattice]\nframework_file = "{tmp_path / "model" / "model.toml"}"\n'
                                           'supercell = [3, 3, 4]\n'))
    classes = system.model.network.event_class_names
    assert name in classes
    assert system.model.barrier_eV[classes.index(name)] == pytest.approx(data["neb"][name]["E_KRA_mean_eV"], abs=1e-6)
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[lattice]\nframework_file = "{tmp_path / "model" / "model.toml"}"\nsupercell = [3, 3, 4]\n'
                   '[run]\ntemperatures_K = [600.0]\nhops_per_ion = 20\nequilibration_hops_per_ion = 5\n'
                   'replicas = 2\nseed = 1\n')
    assert main(["run", str(cfg), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["D_tracer_cm2_s"] > 0
    with pytest.raises(StructureError, match="site class 'X'"):
        parametrize(str(cif), "Li", None, hop_cutoff_A=3.1, calculator=toy_backend(cif), settings=SETTINGS,
                    interstitialcy={"interstitial": ["X"], "lattice": ["Li1_1a"]})
    assert main(["parametrize", str(cif), "--out", str(tmp_path / "bad"), "--calculator",
                 "kmc.parametrize.toy:DoubleWell", "--interstitialcy", "Li2_1b:Y"]) == 2
    assert "site class 'Y'" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("data, model", [
    ("src/kmc/system/structures/llzo_cubic.json", "src/kmc/system/structures/llzo_cubic.toml"),
    ("data/parametrize/llzo-cubic/runs/undoped/data.json", "data/parametrize/llzo-cubic/runs/undoped/model.toml"),
    ("data/parametrize/llzo-cubic/runs/knockoff/data.json", "data/parametrize/llzo-cubic/runs/knockoff/model.toml"),
    ("data/parametrize/llzo-cubic/runs/al-nb/data.json", "data/parametrize/llzo-cubic/runs/al-nb/model.toml"),
    ("src/kmc/system/structures/lgps_computed.json", "src/kmc/system/structures/lgps_computed.toml")])
def test_every_committed_computed_model_is_the_rewrite_of_its_data(data, model):
    """The committed model files are exactly what the writer makes of their data.json (a change
    to the writer that would change a shipped model shows here; rerun its command, from the
    cache, to rewrite it)."""
    from kmc.parametrize.pipeline import rewrite_model

    root = Path(__file__).resolve().parents[1]
    assert rewrite_model(json.loads((root / data).read_text())) == (root / model).read_text()


def test_a_band_whose_ends_relax_into_one_arrangement_is_not_an_event_of_its_class(toy_run, tmp_path, monkeypatch):
    """``_relaxes_back`` maps both relaxed endpoints of a band: one and the same arrangement (the
    moved ion went back) is not an event, the intended hop is one, an endpoint off the lattice
    decides nothing. In a run, such a band is skipped like a flat band (``skipped_as``) and the
    class takes the next environment; a joined run's band its hop check found relaxing back is
    left out of the pooled E_KRA."""
    d, model = toy_run
    problem = load_problem(str(d / "toy.cif"), "Li", None, 3.1, 4.1, 0.0)
    b = model.data["neb"]["Li1_1a-Li2_1b@1.50"]["bands"][0]
    cfg = pipeline.Configuration.from_dict(model.data["configurations"][b["configuration"]])
    images = read(b["band_file"], index=":")
    assert not pipeline._relaxes_back(problem, cfg, b["band_file"], 0.5)     # the hop itself
    back = tmp_path / "back.extxyz"
    write(str(back), [images[0], images[len(images) // 2], images[0].copy()])
    assert pipeline._relaxes_back(problem, cfg, str(back), 0.5)
    off = images[0].copy()
    off.positions[-1] += [0.0, 0.0, 0.75]                                      # half-way between sites
    write(str(back), [images[0], off])
    assert not pipeline._relaxes_back(problem, cfg, str(back), 0.5)

    seen = []

    def fake(problem, cfg, band_file, tol):   # the very first band this run asks about relaxes back
        seen.append(band_file)
        return band_file == seen[0] and len(seen) == 1
    monkeypatch.setattr(pipeline, "_relaxes_back", fake)
    again = rerun_toy(d)
    hop = next(iter(again.data["neb"]))
    v, before = again.data["neb"][hop], model.data["neb"][hop]
    assert [s["skipped_as"] for s in v["flat_bands_skipped"]] == ["relaxes back"]
    assert v["n_environments"] == SETTINGS.n_environments
    assert v["bands"][0]["band_file"] == before["bands"][1]["band_file"]      # the next one moved up
    # a joined run whose check found a band relaxing back: that band is not pooled (here no band
    # of this run relaxes back any more: fake answers True only once)
    data = json.loads((d / "model" / "data.json").read_text())
    for h in data["neb"].values():
        h["bands"][0]["ions_rearranged"] = 0
        for x in h["bands"]:
            x["band_file"] = "elsewhere/" + Path(x["band_file"]).name        # not this run's bands
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "data.json").write_text(json.dumps(data))
    joined = rerun_toy(d, join=[tmp_path / "j" / "data.json"])
    for h, v in joined.data["neb"].items():
        assert v["n_environments"] == (len(again.data["neb"][h]["bands"]) + SETTINGS.n_environments - 1)


def test_a_candidate_whose_ion_already_sits_at_the_destination_is_passed_over(toy_run, monkeypatch):
    """A candidate environment in which the relaxed ion is already within 0.3 Å of the destination
    (``check_endpoints`` refuses it: no atom moves) is no hop there: the run passes over it and the
    class takes the next environment, instead of stopping with that error (it stopped the garnet's
    undoped rerun)."""
    d, model = toy_run
    real = pipeline.check_endpoints
    refused = []

    def refuse_first(initial, final):
        if not refused:
            refused.append(1)
            raise StructureError("no atom moves by more than 0.3 Å between the endpoints")
        return real(initial, final)
    monkeypatch.setattr(pipeline, "check_endpoints", refuse_first)
    again = rerun_toy(d)
    hop = next(iter(model.data["neb"]))
    v, before = again.data["neb"][hop], model.data["neb"][hop]
    assert refused and v["n_environments"] == SETTINGS.n_environments
    assert [b["band_file"] for b in v["bands"][:2]] == [b["band_file"] for b in before["bands"][1:]]
