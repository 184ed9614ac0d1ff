"""Frameworks, CIFs, dopants, percolation, interstitialcy and `kmc info` through the config path
(issue 4)."""
import json
from dataclasses import replace

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from kmc.cli.main import main
from kmc.config import Config
from kmc.engine.model import BLOCKER, ION
from kmc.engine.simulation import Simulation
from kmc.exceptions import ConfigError, KMCError, StructureError, StructureWarning
from kmc.runs.replicas import replica_seeds
from kmc.runs.runner import run_config
from kmc.runs.system import build_system, disorder_seed
from kmc.system.frameworks import framework_names, load_framework

FAST_RUN = {"temperatures_K": [600.0], "hops_per_ion": 10, "equilibration_hops_per_ion": 2,
            "replicas": 2, "seed": 3}


def cfg(lattice, **sections):
    data = {"lattice": lattice, "run": dict(FAST_RUN)}
    data.update(sections)
    return Config.from_dict(data)


@pytest.fixture(scope="module")
def garnet_cif(tmp_path_factory):
    """c-LLZO written as a CIF with Li 24d occupancy 0.9 and 96h occupancy 0.4."""
    s = load_framework("llzo-cubic").structure.copy()
    for i, site in enumerate(s):
        occ = {"Li1": 0.9, "Li2": 0.4}.get(site.properties.get("label"))
        if occ is not None:
            s.replace(i, {"Li": occ}, properties=site.properties)
    path = tmp_path_factory.mktemp("cif") / "garnet.cif"
    CifWriter(s, symprec=0.01).write_file(path)
    return path


# ------------------------------------------------------------------ frameworks
@pytest.mark.parametrize("name,ions,formula,classes,supercell", [
    ("llzo-cubic", 56, "Li7La3Zr2O12", ["Li1", "Li2"], (2, 2, 2)),
    ("llzo-tetragonal", 56, "Li7La3Zr2O12", ["Li1", "Li2"], (2, 2, 2)),
    ("llzo-cubic-latticegas", 56, "Li7La3Zr2O12", ["Li1", "Li2"], (2, 2, 2)),
    ("llzo-tetragonal-latticegas", 56, "Li7La3Zr2O12", ["Li1", "Li2", "Li3", "Li4"], (2, 2, 2)),
    ("lgps", 20, "Li10GeP2S12", ["Li1", "Li2", "Li3", "Li4"], (3, 3, 2)),
])
def test_build_system_for_each_framework_uses_the_data_file(name, ions, formula, classes,
                                                            supercell):
    fw = load_framework(name)
    system = build_system(cfg({"builtin": name}))
    net, model = system.network, system.model
    # default supercell: the smallest one at least 20 Å wide along every axis
    assert net.supercell == supercell and system.n_ions == ions * net.n_cells
    assert system.formula == formula and net.dimensionality == 3
    assert net.class_names == classes
    assert np.allclose(model.kra_class, [fw.barrier_for(h) for h in net.hop_class_names])
    assert np.allclose(model.nu_class, fw.attempt_frequency_THz * 1e12)
    assert system.source.exclusion_distance_A == fw.exclusion_distance_A


def test_framework_model_overrides():
    base = {"builtin": "lgps", "supercell": [1, 1, 2]}
    # a number overrides every class; a table only the named ones; site energies merge
    m = build_system(cfg(base, model={"barrier_eV": 0.4})).model
    assert np.allclose(m.kra_class, 0.4)
    m = build_system(cfg(base, model={"barrier_eV": {"Li1-Li1@1.73": 0.05},
                                      "site_energies_eV": {"Li2": -0.1},
                                      "attempt_frequency_THz": 5.0})).model
    names = m.network.hop_class_names
    assert m.kra_class[names.index("Li1-Li1@1.73")] == 0.05
    assert m.kra_class[names.index("Li1-Li4@3.02")] == 0.28       # from the data file
    assert m.class_energy.tolist() == [0.0, -0.1, 0.0, 0.0]
    assert np.allclose(m.nu_class, 5e12)
    with pytest.raises(ConfigError, match="not a class of this network"):
        build_system(cfg(base, model={"barrier_eV": {"Li9-Li1@1.00": 0.1}}))
    with pytest.raises(ConfigError, match="Li1, Li2, Li3, Li4"):
        build_system(cfg(base, model={"site_energies_eV": {"Li7": 0.1}}))


def test_framework_explicit_occupancy_and_lattice_overrides():
    lat = {"builtin": "llzo-cubic-latticegas", "exclusion_distance_A": 0.0, "hop_cutoff_A": 2.5,
           "supercell": [1, 1, 1]}
    with pytest.raises(ConfigError, match=r"no barrier for the event class 'Li1-Li2@2\.40'"):
        build_system(cfg(lat))
    s = build_system(cfg(lat, occupancy={"ions": 60}, model={"barrier_eV": {"default": 0.5}}))
    assert s.n_ions == 60 and s.formula == "Li7.5La3Zr2O12"
    assert len(s.network.exclusions) == 0
    assert s.network.hop_class_lengths.tolist() == [0.87, 1.6, 2.4, 2.45]
    assert s.model.kra_class.tolist() == [0.3, 0.3, 0.5, 0.5]  # data file first, then default


def test_framework_run_json_reports_formula_and_percolation(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text('[lattice]\nbuiltin = "llzo-cubic"\nsupercell = [1, 1, 1]\n[dopants]\nGa = { site = "Li1", '
                 'per_formula_unit = 0.25 }\n[run]\ntemperatures_K = [700.0]\nhops_per_ion = 5\n'
                 'equilibration_hops_per_ion = 1\nreplicas = 2\n')
    assert main(["run", str(p), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["formula"] == "Li6.25Ga0.25La3Zr2O12"
    assert data["mobile_ions_per_formula_unit"] == 6.25
    assert data["network"]["blocked_per_class"] == {"Li1": 2}
    perc = data["results"][0]["percolation"]
    # each Ga holds its 24d site and blocks the four 96h sites 1.60 Å away (the computed model's
    # exclusion: CHGNet relaxed every Li placed there away); each 96h has one 24d that close
    assert perc["blocked_sites"] == 2 * 5 and 0.8 < perc["spanning_fraction"] <= 1.0
    assert perc["dimensionality_mean"] == 3
    assert data["config"]["dopants"]["Ga"] == {"site": "Li1", "per_formula_unit": 0.25}


# ------------------------------------------------------------------ dopants
def test_dopants_set_ion_count_and_blockers_per_replica():
    c = cfg({"builtin": "llzo-cubic", "supercell": [2, 1, 1]},
            dopants={"Al": {"site": "Li1", "per_formula_unit": 0.25},
                     "Ta": {"site": "Zr", "per_formula_unit": 0.5}})
    system = build_system(c)
    # Li(7 - 3*0.25 - 0.5) per f.u. x 16 f.u.
    assert system.n_ions == 16 * 7 - 3 * 4 - 8
    assert system.formula == "Li5.75Al0.25La3Zr1.5Ta0.5O12"
    assert system.blocked_counts == {"Li1": 4}
    seeds = replica_seeds(0, 1, 3)[0]
    a = system.disorder(seeds[0])[0]
    b = system.disorder(seeds[1])[0]
    again = system.disorder(replica_seeds(0, 1, 3)[0][0])[0]
    # each Al holds its 24d site and blocks the four 96h sites 1.60 Å away (computed: CHGNet
    # relaxed the Li placed there away)
    assert a.sum() == b.sum() == 4 * 5 and not np.array_equal(a, b)   # replicas differ
    assert np.array_equal(a, again)                                 # same seed, same placement
    li1 = np.array(system.network.class_names)[system.network.site_class] == "Li1"
    assert li1[a].sum() == 4 and (~li1[a]).sum() == 4 * 4
    # the placement stream is separate from the replica's own streams (derived, not spawned)
    s0 = replica_seeds(0, 1, 1)[0][0]
    assert disorder_seed(s0).spawn_key[:-1] == s0.spawn_key and s0.n_children_spawned == 0


def test_replicas_of_a_doped_run_place_blockers_independently():
    from kmc.runs.replicas import ReplicaMeasurement

    c = cfg({"builtin": "llzo-cubic-latticegas", "supercell": [1, 1, 1]},   # no computed dopant terms
            dopants={"Ga": {"site": "Li", "per_formula_unit": 0.5}})
    system = build_system(c)
    reps = [ReplicaMeasurement(system, 600.0, s, c.run) for s in replica_seeds(5, 1, 2)[0]]
    occ = [r.sim.occupancy for r in reps]
    assert all((o == BLOCKER).sum() == 4 for o in occ)
    assert not np.array_equal(occ[0] == BLOCKER, occ[1] == BLOCKER)
    assert all((o == ION).sum() == system.n_ions for o in occ)


def test_energy_shift_near_dopants_and_rates_stay_exact():
    c = cfg({"builtin": "llzo-cubic-latticegas", "supercell": [1, 1, 1]},   # no computed dopant terms
            dopants={"Ta": {"site": "Zr", "per_formula_unit": 0.25, "energy_shift_eV": 0.1,
                            "shift_radius_A": 3.5},
                     "Ga": {"site": "Li1", "per_formula_unit": 0.125, "energy_shift_eV": -0.05,
                            "shift_radius_A": 2.5}})
    system = build_system(c)
    seed = replica_seeds(1, 1, 1)[0][0]
    blocked, offset = system.disorder(seed)
    net = system.network
    assert blocked.sum() == 1 and len(system.host_positions) == 16   # Zr 16a
    # recompute the Ta shells by hand: 2 Ta on Zr sites, minimum image in the 12.98 Å cube
    rng = np.random.default_rng(disorder_seed(seed))
    ta = system.host_positions[rng.choice(np.arange(16), 2, replace=False)]
    ga = rng.choice(system.dopants[1].candidates["Li1"], 1, replace=False)
    assert blocked[ga].all()

    def near(points, r):
        d = net.positions[:, None, :] - points[None, :, :]
        d -= np.round(d / 12.98) * 12.98
        dist = np.linalg.norm(d, axis=2)
        return ((dist <= r) & (dist > 1e-6)).sum(axis=1)
    expected = 0.1 * near(ta, 3.5) - 0.05 * near(net.positions[ga], 2.5)
    assert np.allclose(offset, expected) and np.any(expected > 0) and np.any(expected < 0)
    model = replace(system.model, site_energy_offset_eV=offset)
    sim = Simulation(model, 500.0, n_ions=system.n_ions, blocked=blocked, seed=2)
    for _ in range(30):
        sim.run(1)
        sim.check_rates()


def test_a_models_computed_dopant_term_applies_unless_the_config_gives_its_own(tmp_path):
    """``[dopant_terms]`` of a model file (what ``kmc parametrize --dopant Ta:Zr`` writes) is the
    energy shift of a ``[dopants]`` entry of that element on that host without its own; an
    explicit shift wins, and another host or element gets none."""
    from importlib.resources import files

    text = (files("kmc.system.structures") / "llzo_cubic_latticegas.toml").read_text()
    model = tmp_path / "model.toml"
    model.write_text(text + '\n[dopant_terms]\nTa = { site = "Zr", energy_shift_eV = 0.07, '
                     'shift_radius_A = 3.6 }\n')

    def plan(dopants):
        c = cfg({"framework_file": str(model), "supercell": [1, 1, 1]}, dopants=dopants)
        return {d.element: (d.energy_shift_eV, d.shift_radius_A) for d in build_system(c).dopants}

    assert plan({"Ta": {"site": "Zr", "per_formula_unit": 0.25}}) == {"Ta": (0.07, 3.6)}
    assert plan({"Ta": {"site": "Zr1", "per_formula_unit": 0.25}}) == {"Ta": (0.07, 3.6)}
    assert plan({"Ta": {"site": "Zr", "per_formula_unit": 0.25, "energy_shift_eV": 0.1,
                        "shift_radius_A": 3.0}}) == {"Ta": (0.1, 3.0)}
    with pytest.warns(StructureWarning, match=r"terms for Ta on Zr \(\[dopant_terms\]\) but none for Nb, so Nb only"):
        assert plan({"Nb": {"site": "Zr", "per_formula_unit": 0.25}}) == {"Nb": (None, None)}
    assert plan({"Ta": {"site": "La", "per_formula_unit": 0.25, "charge": 5}}) == {"Ta": (None, None)}
    # a model radius too long for the cell: the one-sentence error says where it came from
    model.write_text(text + '\n[dopant_terms]\nTa = { site = "Zr", energy_shift_eV = 0.07, '
                     'shift_radius_A = 7.0 }\n')
    with pytest.raises(ConfigError, match=r"7 Å \(the model's \[dopant_terms\]\) reaches half"):
        plan({"Ta": {"site": "Zr", "per_formula_unit": 0.25}})
    # without the table: no shift; the shipped llzo-cubic has its computed Ta-Li term
    c = cfg({"builtin": "llzo-cubic-latticegas", "supercell": [1, 1, 1]},
            dopants={"Ta": {"site": "Zr", "per_formula_unit": 0.25}})
    assert build_system(c).dopants[0].energy_shift_eV is None
    ta = load_framework("llzo-cubic").data["dopant_terms"]["Ta"]
    c = cfg({"builtin": "llzo-cubic", "supercell": [1, 1, 1]},
            dopants={"Ta": {"site": "Zr", "per_formula_unit": 0.25}})
    d = build_system(c).dopants[0]
    assert d.shells == ta["shells"] and len(ta["shells"]) == 3 and d.energy_shift_eV is None


# ------------------------------------------------------------------ percolation
def test_percolation_square_lattice_by_hand():
    """8x8 square lattice: block columns x=0 and x=2 and the site (1, 0). Column x=1 is then a
    finite chain (7 sites, dimensionality 0); columns 3..7 form a strip periodic along y
    (40 sites, dimensionality 1): 40 of the 47 free sites span, dimensionality 1."""
    system = build_system(Config.from_dict({"lattice": {"builtin": "square",
                                                        "supercell": [8, 8, 1]},
                                            "occupancy": {"filling": 0.5}}))
    net = system.network
    x, y = np.round(net.positions[:, 0]).astype(int), np.round(net.positions[:, 1]).astype(int)
    blocked = (x == 0) | (x == 2) | ((x == 1) & (y == 0))
    p = system.percolation(blocked)
    assert p == {"spanning_fraction": pytest.approx(40 / 47), "dimensionality": 1,
                 "blocked_sites": 17}
    assert system.percolation(np.zeros(net.n_sites, bool))["spanning_fraction"] == 1.0
    assert system.percolation(np.zeros(net.n_sites, bool))["dimensionality"] == 2


# ------------------------------------------------------------------ CIF
def test_garnet_cif_without_extra_input(garnet_cif):
    with pytest.raises(ConfigError, match="a CIF brings no barriers"):
        build_system(cfg({"cif": str(garnet_cif)}))
    assert build_system(cfg({"cif": str(garnet_cif)}, model={"barrier_eV": 0.3}),
                        ).network.supercell == (2, 2, 2)                 # >= 20 Å wide
    one = {"cif": str(garnet_cif), "supercell": [1, 1, 1]}
    s = build_system(cfg(one, model={"barrier_eV": 0.3}))
    net = s.network
    sites = dict(zip(net.class_names, np.bincount(net.unit_class).tolist()))
    assert sorted(sites.values()) == [24, 96] and all("Li" in k for k in sites)
    assert sites == {"Li0": 96, "Li1": 24}      # classes named by the CIF's _atom_site_label
    assert s.n_ions == 60                                         # 24 x 0.9 + 96 x 0.4
    assert s.formula == "Li7.5La3Zr2O12" and s.mobile_per_formula_unit == 7.5
    assert net.dimensionality == 3 and min(net.hop_class_lengths) == pytest.approx(0.87)
    # per-class barriers from a table (e.g. NEB values) override
    names = net.hop_class_names
    table = {n: 0.2 + 0.01 * k for k, n in enumerate(names)}
    m = build_system(cfg(one, model={"barrier_eV": table})).model
    assert np.allclose(m.kra_class, [table[n] for n in names])


def test_cif_path_is_relative_to_the_config_file(tmp_path, garnet_cif):
    sub = tmp_path / "cfgdir"
    sub.mkdir()
    (sub / "g.cif").write_bytes(garnet_cif.read_bytes())
    (sub / "c.toml").write_text('[lattice]\ncif = "g.cif"\nhop_cutoff_A = 1.7\n'
                                '[model]\nbarrier_eV = 0.3\n')
    c = Config.from_file(sub / "c.toml")
    assert c.lattice.cif == str((sub / "g.cif").absolute()) and c.lattice.mobile == "Li"
    assert Config.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="no CIF file"):
        Config.from_dict({"lattice": {"cif": "g.cif"}})       # not in the working directory


def _write_cif(path, structure):
    CifWriter(structure).write_file(path)
    return str(path)


def test_cif_errors_say_what_to_change(tmp_path):
    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    no_li = _write_cif(tmp_path / "nacl.cif", nacl)
    with pytest.raises(StructureError, match=r"contains no Li \(it has Cl, Na\).*mobile"):
        build_system(cfg({"cif": no_li}, model={"barrier_eV": 0.3}))
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 5\nthis is not a cif\n")
    with pytest.raises(StructureError, match="could not read a crystal structure"):
        build_system(cfg({"cif": str(bad)}, model={"barrier_eV": 0.3}))
    far = Structure(Lattice.cubic(4.0), ["Li", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(StructureError, match="raise hop_cutoff_A"):
        build_system(cfg({"cif": _write_cif(tmp_path / "far.cif", far)},
                         model={"barrier_eV": 0.3}))
    # hops exist but only within isolated pairs: no path through the crystal
    dimer = Structure(Lattice.cubic(7.0), ["Li", "Li", "O"],
                      [[0, 0, 0], [0.3, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(StructureError, match=r"isolated clusters.*next Li-Li distance is 4\.90"):
        build_system(cfg({"cif": _write_cif(tmp_path / "dimer.cif", dimer),
                          "supercell": [2, 2, 2]}, model={"barrier_eV": 0.3}))


# ------------------------------------------------------------------ kmc info
INFO_KEYS = {"dimensionality", "ions_per_cell", "sites_per_class", "hops_per_class",
             "exclusion_distance_A", "formula", "mobile_ions_per_formula_unit", "percolation"}


@pytest.mark.parametrize("name", ["llzo-cubic", "llzo-tetragonal", "llzo-tetragonal-latticegas", "lgps"])
def test_kmc_info_json_for_each_framework(name, capsys):
    assert main(["info", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    fw = load_framework(name)
    assert INFO_KEYS <= set(info)
    assert info["dimensionality"] == 3
    assert info["ions_per_cell"] == pytest.approx(fw.ions_per_cell, abs=1e-3)
    assert info["formula"] == fw.formula_unit
    assert sum(info["sites_per_class"].values()) == len(fw.mobile_labels)
    for h in info["hops_per_class"].values():
        assert h["length_A"] > 0 and h["default_barrier_eV"] == h["barrier_eV"] is not None
    assert info["exclusion_distance_A"] == fw.exclusion_distance_A


def test_kmc_info_dopants_text_and_knockoffs(capsys):
    assert main(["info", "llzo-cubic", "--dopant", "Ta:Zr:0.6", "--dopant", "Ga:Li1:0.25",
                 "--supercell", "1", "1", "1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["formula"] == "Li5.625Ga0.25La3Zr1.375Ta0.625O12"   # 0.6 x 8 -> 5 Ta
    assert info["mobile_ions_per_formula_unit"] == 5.625
    assert info["dopants"]["blocked_per_class"] == {"Li1": 2}
    assert main(["info", "lgps", "--interstitialcy", "Li1:Li3:30", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["knockoff_classes"]) == ["knockoff:Li1-Li3-Li1@2.32+2.32"]
    assert "no barrier" in info["barrier_note"]
    assert main(["info", "lgps"]) == 0
    text = capsys.readouterr().out
    assert "Li1-Li1@1.73" in text and "dimensionality 3" in text and "Li10GeP2S12" in text


def test_kmc_info_cif(garnet_cif, capsys):
    assert main(["info", str(garnet_cif), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"] == "cif" and info["ions_per_cell"] == 60
    assert info["formula"] == "Li7.5La3Zr2O12" and info["space_group"].startswith("Ia-3d")
    assert info["hops_per_class"]  # (all() of no classes would be vacuously true)
    assert all(h["default_barrier_eV"] is None for h in info["hops_per_class"].values())
    assert info["hop_cutoff_A"] == 3.0 and info["exclusion_distance_A"] == 0.0


@pytest.mark.parametrize("kind,needle", [
    ("nacl", "contains no Li"), ("bad", "could not read"), ("far", "the shortest Li-Li distance is 4.00 Å); raise hop_cutoff_A"),
    ("missing", "no CIF file"), ("name", "did you mean 'llzo-cubic'"),
])
def test_kmc_info_errors_exit_2_with_one_sentence(tmp_path, capsys, kind, needle):
    paths = {
        "nacl": _write_cif(tmp_path / "nacl.cif", Structure(Lattice.cubic(5.6), ["Na", "Cl"],
                                                            [[0, 0, 0], [0.5, 0.5, 0.5]])),
        "far": _write_cif(tmp_path / "far.cif", Structure(Lattice.cubic(4.0), ["Li", "O"],
                                                          [[0, 0, 0], [0.5, 0.5, 0.5]])),
        "missing": str(tmp_path / "nope.cif"), "name": "llzo-cubc",
    }
    if kind == "bad":
        (tmp_path / "bad.cif").write_text("data_x\nnot a cif at all\n")
        paths["bad"] = str(tmp_path / "bad.cif")
    assert main(["info", paths[kind], "--json"]) == 2
    out, err = capsys.readouterr()
    assert needle in err and out == "" and err.count("\n") == 1 and "Traceback" not in err


# ------------------------------------------------------------------ interstitialcy
def _bcc(knockoff_barrier):
    import tomllib
    from importlib import resources

    text = (resources.files("kmc.examples") / "interstitialcy_bcc.toml").read_text()
    data = tomllib.loads(text)
    data["model"]["barrier_eV"]["knockoff:I-L-I@2.60+2.60"] = knockoff_barrier
    data["run"].update(replicas=6, time_origins=8, hops_per_ion=24, seed=11)
    data["lattice"]["supercell"] = [4, 4, 4]
    data["occupancy"] = {"ions": 68}
    return Config.from_dict(data)


def test_interstitialcy_on_bcc_lowers_the_haven_ratio():
    knock = run_config(_bcc(0.15)).results[0]
    plain = run_config(_bcc(3.0)).results[0]      # knock-offs switched off
    assert knock["knockoff_event_fraction"] > 0.8
    assert plain["knockoff_event_fraction"] == 0.0
    # a knock-off moves two ions the same way: D_J grows faster than D*, H_R well below 1
    assert knock["haven_ratio"] < 0.6
    assert 0.65 < plain["haven_ratio"] < 1.5
    assert knock["D_tracer_cm2_s"] > 3 * plain["D_tracer_cm2_s"] + 3 * plain["D_tracer_err_cm2_s"]


def test_interstitialcy_per_framework_labels():
    c = cfg({"builtin": "lgps"},
            model={"interstitialcy": {"interstitial": ["Li1"], "lattice": ["Li3"],
                                      "max_angle_deg": 30.0},
                   "barrier_eV": {"knockoff:Li1-Li3-Li1@2.32+2.32": 0.1}})
    s = build_system(c)
    names = s.network.event_class_names
    assert names[-1] == "knockoff:Li1-Li3-Li1@2.32+2.32" and s.model.kra_class[-1] == 0.1
    assert s.model.kra_class[names.index("Li1-Li4@3.02")] == 0.28
    with pytest.raises(ConfigError, match="no barrier for the event class 'knockoff"):
        build_system(cfg({"builtin": "lgps"},
                         model={"interstitialcy": {"interstitial": ["Li1"], "lattice": ["Li3"]}}))
    with pytest.raises(StructureError, match="lacks"):
        build_system(cfg({"builtin": "lgps"},
                         model={"interstitialcy": {"interstitial": ["I"], "lattice": ["Li3"]}}))


def test_every_framework_name_is_a_builtin():
    for name in framework_names():
        assert Config.from_dict({"lattice": {"builtin": name}}).lattice.kind == "framework"
    assert issubclass(StructureError, KMCError)


# ------------------------------------------------------------------ config validation
FW = '[lattice]\nbuiltin = "llzo-cubic"\n[run]\ntemperatures_K = [600.0]\nreplicas = 2\n'


@pytest.mark.parametrize("text,needle", [
    ('[lattice]\nbuiltin = "lgps"\ncif = "x.cif"\n', "more than one of builtin, cif and framework_file"),
    ('[lattice]\ncif = "nowhere.cif"\n', "no CIF file"),
    ('[lattice]\ncif = 3\n', "path of a CIF file"),
    ('[lattice]\nbuiltin = "llzo-cubc"\n', "did you mean 'llzo-cubic'"),
    (FW.replace("[run]", "lattice_constant_A = 5.0\n[run]"), "teaching lattices only"),
    (FW.replace("[run]", "site_labels = ['a']\n[run]"), "teaching lattices only"),
    (FW.replace("[run]", "symprec = 0.1\n[run]"), "CIF source only"),
    (FW.replace("[run]", "mobile = 'Na'\n[run]"), "whose mobile ion is Li"),
    (FW.replace("[run]", "supercel = [1, 1, 1]\n[run]"), "did you mean 'supercell'"),
    (FW + '[dopants]\nXx = { site = "Zr", per_formula_unit = 0.5 }\n', "not a chemical element"),
    (FW + '[dopants]\nTa = { per_formula_unit = 0.5 }\n', "needs site"),
    (FW + '[dopants]\nTa = { site = "Zr" }\n', "needs per_formula_unit"),
    (FW + '[dopants]\nTa = { site = "Zr", per_formula_unit = -0.5 }\n', "must not be negative"),
    (FW + '[dopants]\nTa = { site = "Zr", per_formula_unit = 0.5, chrge = 5 }\n',
     "did you mean 'charge'"),
    (FW + '[dopants]\nTa = { site = "Zr", per_formula_unit = 0.5, charge = 0 }\n', "non-zero"),
    (FW + '[dopants]\nTa = { site = "Zr", per_formula_unit = 0.5, energy_shift_eV = 0.1 }\n',
     "together"),
    (FW + '[dopants]\nTa = "Zr"\n', "inline table"),
    (FW + '[dopants]\nTa = { site = "Mn", per_formula_unit = 0.5 }\n', "no site 'Mn'"),
    (FW + '[dopants]\nTa = { site = "Zr", per_formula_unit = 0.5, energy_shift_eV = 0.1, '
     'shift_radius_A = 13.0 }\n', "half the supercell width"),
    ('[lattice]\nbuiltin = "sc"\n[occupancy]\nfilling = 0.5\n[dopants]\n'
     'Ga = { site = "Li", per_formula_unit = 0.1 }\n', "needs a builtin framework"),
    ('[lattice]\nbuiltin = "sc"\n[occupancy]\n', "exactly one of"),
    (FW.replace("[run]", "[model.interstitialcy]\ninterstitial = 'Li2'\nlattice = ['Li1']\n"
                "[run]"), "non-empty list"),
    (FW.replace("[run]", "[model.interstitialcy]\ninterstitial = ['Li2']\nlattice = ['Li1']\n"
                "max_angle = 3\n[run]"), "did you mean 'max_angle_deg'"),
    (FW.replace("[run]", "[model.interstitialcy]\ninterstitial = ['Li2']\nlattice = ['Li1']\n"
                "max_angle_deg = 200\n[run]"), "[0, 180)"),
    (FW.replace("[run]", "[model.interstitialcy]\ninterstitial = ['Li2']\nlattice = ['Li1']\n"
                "[run]"), "close enough to collinear"),
])
def test_new_config_keys_are_validated(tmp_path, capsys, text, needle):
    p = tmp_path / "c.toml"
    p.write_text(text)
    assert main(["run", str(p), "--json"]) == 2
    out, err = capsys.readouterr()
    assert needle in err, err
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err


def test_framework_configs_round_trip_and_teaching_defaults_are_explicit():
    c = Config.from_toml(FW + '[dopants]\nTa = { site = "Zr", per_formula_unit = 0.5, '
                              'energy_shift_eV = 0.1, shift_radius_A = 3.0 }\n'
                              '[model.interstitialcy]\ninterstitial = ["Li2"]\nlattice = ["Li1"]\n')
    d = c.to_dict()
    assert Config.from_dict(d) == c
    assert d["lattice"] == {"builtin": "llzo-cubic"}       # supercell: automatic
    assert d["occupancy"] == {} and "barrier_eV" not in d["model"]
    assert d["model"]["interstitialcy"] == {"interstitial": ["Li2"], "lattice": ["Li1"],
                                            "max_angle_deg": 30.0}
    t = Config.from_toml('[lattice]\nbuiltin = "bcc"\n[occupancy]\nfilling = 0.5\n').to_dict()
    assert t["lattice"] == {"builtin": "bcc", "supercell": [8, 8, 8], "lattice_constant_A": 1.0,
                            "mobile": "Li", "exclusion_distance_A": 0.0}
    assert t["model"]["barrier_eV"] == 0.25 and t["model"]["attempt_frequency_THz"] == 10.0
    assert "dopants" not in t
    from pymatgen.core import Lattice as L

    from kmc.config import auto_supercell
    assert auto_supercell(L.hexagonal(3.0, 10.0).matrix) == (8, 8, 2)   # widths 2.60, 2.60, 10
    assert auto_supercell(L.cubic(12.98).matrix) == (2, 2, 2)


def test_cli_shows_a_dopant_without_computed_terms_as_one_kmc_warning_line(capsys):
    """Zn on 24d of the shipped llzo-cubic (which has computed Al and Ga terms there, none for Zn): the
    CLI says so once, as a `kmc: warning:` line, not in Python's file-and-line form."""
    assert main(["info", "llzo-cubic", "--supercell", "1", "1", "1", "--dopant", "Zn:Li1:0.25"]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines == ["kmc: warning: llzo-cubic has computed Li terms for Al, Ga on Li1 ([dopant_terms]) but none "
                     "for Zn, so Zn only changes the Li count and blocks the Li1 sites it takes; compute them "
                     "with `kmc parametrize --dopant Zn:Li1` or give [dopants] Zn an energy_shift_eV and "
                     "shift_radius_A."]


def test_campaign_warns_once_about_a_dopant_without_terms_even_with_worker_processes(tmp_path, capfd):
    """The campaign process checks every point before the runs and says it there; its worker
    processes (spawned: Python's warning display) stay quiet about the input."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[campaign]\nname = "tiny"\nseed = 1\n[base.lattice]\nbuiltin = "llzo-cubic"\n'
                   'supercell = [1, 1, 1]\n[base.run]\ntemperatures_K = [600]\nhops_per_ion = 20\n'
                   'equilibration_hops_per_ion = 5\nreplicas = 2\n[zip]\n"dopants" = [\n'
                   '    { Zn = { site = "Li1", per_formula_unit = 0.25 } },\n'
                   '    { W = { site = "Zr", per_formula_unit = 0.25 } },\n]\n')
    assert main(["campaign", str(cfg), "--out", str(tmp_path / "out"), "--workers", "2"]) == 0
    err = capfd.readouterr().err
    assert "StructureWarning" not in err
    assert err.count("but none for Zn") == 1 and err.count("but none for W") == 1


def test_concerted_knockoffs_in_the_computed_garnet_obey_detailed_balance():
    """Knock-offs (a 96h Li pushes the 24d Li on to another 96h: two ions move in one event) on the
    computed llzo-cubic with its fitted Li-Li shells and computed Ta terms: for every open knock-off
    the forward and reverse rates satisfy rate / reverse = exp(-dE / kT) with dE the model's full
    energy change (pairs, site energies, dopant offsets), and the engine's incremental rates stay
    equal to the full recompute while it executes them."""
    from kmc.constants import KB_EV_K

    ko = "knockoff:Li2-Li1-Li2@1.60+1.60"
    c = cfg({"builtin": "llzo-cubic", "supercell": [1, 1, 1]},
            dopants={"Ta": {"site": "Zr", "per_formula_unit": 0.5}},
            model={"interstitialcy": {"interstitial": ["Li2"], "lattice": ["Li1"], "max_angle_deg": 60.0},
                   "barrier_eV": {ko: 0.05}})
    system = build_system(c)
    seed = replica_seeds(1, 1, 1)[0][0]
    blocked, offset = system.disorder(seed)
    model = replace(system.model, site_energy_offset_eV=offset)
    net = model.network
    assert ko in net.event_class_names and np.ptp(offset) > 0
    T = 600.0
    sim = Simulation(model, T, n_ions=system.n_ions, blocked=blocked, seed=2)
    ev = net.events()
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    checked = pushes = 0
    for step in range(300):
        occ = sim.occupancy
        if step % 10 == 0:
            rates = model.reference_rates(occ, T)
            for e in np.flatnonzero((ev["ev_mid"] >= 0) & (rates > 0)):
                after = occ.copy()
                after[src[e]], after[ev["ev_dst"][e]] = 0, ION
                back = model.reference_rates(after, T)[ev["ev_rev"][e]]
                dE = model.energy(after) - model.energy(occ)
                assert rates[e] / back == pytest.approx(np.exp(-dE / (KB_EV_K * T)), rel=1e-9)
                checked += 1
        before = sim.engine.state["disp"].copy()
        sim.run(1)
        sim.check_rates()
        pushes += np.sum(np.any(sim.engine.state["disp"] != before, axis=1)) == 2
    assert checked > 20 and pushes > 0


def test_a_model_term_the_fit_left_undetermined_is_named_when_a_run_uses_it():
    """The Al/Nb garnet run alone (committed, not shipped) left the Li2-Li2 @3.23 pair and the
    Al-Li2 @2.40 term undetermined (0 eV in its model file): a run of that model says so, the Al
    term only when Al is placed; the shipped three-run model, where both are fitted (and the
    undetermined 1.60 Å dopant terms are computed exclusions), says nothing."""
    import warnings
    from pathlib import Path

    alnb = str(Path(__file__).resolve().parents[1] / "data/parametrize/llzo-cubic/runs/al-nb/model.toml")
    al = {"Al": {"site": "Li1", "per_formula_unit": 0.25}}
    with pytest.warns(StructureWarning) as rec:
        build_system(cfg({"framework_file": alnb, "supercell": [1, 1, 1]}))
    msgs = [str(w.message) for w in rec if "undetermined" in str(w.message)]
    assert len(msgs) == 1 and "pair:Li2-Li2@3.23" in msgs[0] and "Al" not in msgs[0]
    with pytest.warns(StructureWarning) as rec:
        build_system(cfg({"framework_file": alnb, "supercell": [1, 1, 1]}, dopants=al))
    msgs = [str(w.message) for w in rec if "undetermined" in str(w.message)]
    assert len(msgs) == 2 and "Al terms dopant:Al(Li1)-Li2@2.40 undetermined" in msgs[1]
    assert "Al(Li1)-Li2@1.60" not in " ".join(msgs)          # a computed exclusion, not a gap
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_system(cfg({"builtin": "llzo-cubic", "supercell": [1, 1, 1]}, dopants=al))
