"""``[occupancy] start_structure``: replicas start from the arrangement of a known structure.

The committed ordered tetragonal Li7La3Zr2O12 (the public GGA structure of the t-LLZO NEB reference
plus its vacancy; I4_1/acd, a = 13.24, c = 12.70 Å, in its own origin and axis setting) must land
on the cubic garnet lattice as the tetragonal order: 8 of the 24 tetrahedral 24d sites per cell,
all with the same 4-bar axis, one Li in every octahedral cage, the same in every cell.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from kmc.config import Config
from kmc.exceptions import ConfigError, StructureError
from kmc.runs.replicas import ReplicaMeasurement, replica_seeds
from kmc.runs.system import build_system
from kmc.system.frameworks import load_framework

T_LLZO = Path(load_framework("llzo-tetragonal").start_structure)   # the shipped ordered t-LLZO


def _cfg(occupancy: dict, lattice: dict | None = None, **extra) -> Config:
    return Config.from_dict({"lattice": lattice or {"builtin": "llzo-cubic", "supercell": [2, 2, 2]},
                             "occupancy": occupancy,
                             "run": {"temperatures_K": [300.0], "hops_per_ion": 5, "replicas": 2, "seed": 1},
                             **extra})


def test_tetragonal_order_on_the_cubic_lattice_and_the_run_starts_there():
    system = build_system(_cfg({"start_structure": str(T_LLZO)}))
    net = system.network
    start = system.initial_occupancy
    assert system.n_ions == 448 and system.formula == "Li7La3Zr2O12"
    cells = start.reshape(net.n_cells, net.n_unit)
    assert (cells == cells[0]).all()                                  # one cell, repeated
    unit = cells[0]
    tet = np.flatnonzero(unit & (net.unit_class == net.class_names.index("Li1")))
    assert len(tet) == 8
    quarter = np.isclose(net.unit_frac[tet] % 0.5, 0.25, atol=0.01)     # the 24d 4-bar axis
    assert quarter.sum(axis=0).max() == 8                               # all eight share it
    assert unit[net.unit_class == net.class_names.index("Li2")].sum() == 48   # one per cage
    seq = replica_seeds(1, 1, 2)[0][0]
    rep = ReplicaMeasurement(system, 300.0, seq, _cfg({"start_structure": str(T_LLZO)}).run, equilibrate=False)
    assert np.array_equal(rep.sim.occupancy == 1, start)


def test_start_structure_refusals(tmp_path):
    with pytest.raises(ConfigError, match="sets the ion count itself"):
        _cfg({"start_structure": str(T_LLZO), "ions": 10})
    with pytest.raises(ConfigError, match="no structure file"):
        _cfg({"start_structure": str(tmp_path / "none.cif")})
    with pytest.raises(ConfigError, match="teaching lattice"):
        build_system(_cfg({"start_structure": str(T_LLZO)}, {"builtin": "sc", "supercell": [4, 4, 4]}))
    with pytest.raises(ConfigError, match="dopants"):
        build_system(_cfg({"start_structure": str(T_LLZO)},
                          dopants={"Ta": {"site": "Zr1", "per_formula_unit": 0.5}}))
    # the lattice's own cell with one cage holding two Li (0.87 Å apart: excluded)
    net = build_system(_cfg({})).network
    fw = [s for s in net.structure if s.is_ordered and s.specie.symbol != "Li"]
    unit = build_system(_cfg({"start_structure": str(T_LLZO)})).initial_occupancy[:net.n_unit]
    frac = net.unit_frac[unit]
    lat = net.unit_lattice
    d = np.linalg.norm(((net.unit_frac[:, None] - frac[None] + 0.5) % 1 - 0.5) @ lat, axis=2)
    partner = int(np.flatnonzero(~unit & (d.min(axis=1) < 0.9))[0])
    s = Structure(Lattice(lat), [x.specie for x in fw] + ["Li"] * (len(frac) + 1),
                  np.vstack([[x.frac_coords for x in fw], frac, net.unit_frac[partner]]))
    s.to(filename=str(tmp_path / "clash.cif"))
    with pytest.raises(ConfigError, match="closer than the exclusion distance"):
        build_system(_cfg({"start_structure": str(tmp_path / "clash.cif")}))
    other = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    other.to(filename=str(tmp_path / "nacl.cif"))
    with pytest.raises(StructureError, match="framework"):
        build_system(_cfg({"start_structure": str(tmp_path / "nacl.cif")}))


def test_builtin_tetragonal_is_the_cubic_model_started_from_the_order():
    """``llzo-tetragonal`` is the computed ``llzo-cubic`` (same sites, hops, rates) with every
    replica started from the ordered t-LLZO arrangement; compositions it cannot hold are refused."""
    tet = build_system(Config.from_dict({"lattice": {"builtin": "llzo-tetragonal", "supercell": [2, 2, 2]}}))
    cub = build_system(_cfg({"start_structure": str(T_LLZO)}))
    assert np.array_equal(tet.initial_occupancy, cub.initial_occupancy) and tet.n_ions == 448
    assert np.array_equal(tet.network.positions, cub.network.positions)
    for attr in ("nu_class", "kra_class", "class_energy", "shell_Jq"):
        assert np.array_equal(getattr(tet.model, attr), getattr(cub.model, attr))
    fw = load_framework("llzo-tetragonal")
    assert fw.data["provenance"] == load_framework("llzo-cubic").data["provenance"]
    assert fw.experiment == load_framework("llzo-tetragonal-latticegas").experiment   # t-LLZO, not c-LLZO
    for extra in ({"occupancy": {"ions": 400}}, {"dopants": {"Ta": {"site": "Zr1", "per_formula_unit": 0.5}}}):
        with pytest.raises(ConfigError, match="use llzo-cubic"):
            build_system(Config.from_dict({"lattice": {"builtin": "llzo-tetragonal", "supercell": [1, 1, 1]},
                                           **extra}))


def test_an_ion_midway_between_two_sites_takes_the_lower_index_whatever_the_noise():
    """t-LLZO's octahedral Li sit at cage centres, 0.434 Å from both split 96h sites: the mapping
    must not depend on floating-point noise (it changed with the distance code once, moving 7 of
    48 ions), so a tie within 1 mÅ goes to the lower site index."""
    from kmc.system.arrangement import site_occupancy

    fw = load_framework("llzo-cubic")
    frac, lat = fw.mobile_frac, fw.structure.lattice.matrix
    li2 = np.flatnonzero(np.array(fw.mobile_labels) == "Li2")
    d = np.linalg.norm(((frac[li2][:, None] - frac[li2][None] + 0.5) % 1 - 0.5) @ lat, axis=2)
    a, b = (int(li2[k]) for k in np.argwhere((d > 0.8) & (d < 0.9))[0])   # one cage's split pair
    mid = frac[a] + ((frac[b] - frac[a] + 0.5) % 1 - 0.5) / 2
    fixed = [s for s in fw.structure if "Li" not in s.species_string]
    host = Structure(fw.structure.lattice, [s.species for s in fixed], [s.frac_coords for s in fixed])
    got = []
    for nudge in (0.0, 2e-4, -2e-4):      # Å towards b (noise below the 1 mÅ tie resolution)
        step = (frac[b] - frac[a] + 0.5) % 1 - 0.5
        step = step / np.linalg.norm(step @ lat) * nudge
        s = host.copy()
        s.append("Li", mid + step)
        got += np.flatnonzero(site_occupancy(frac, lat, host, s, "Li", 0.5)).tolist()
    # the framework match may move the ion to a symmetry-equivalent cage: the same site each time,
    # and the lower index of that cage's pair
    assert len(set(got)) == 1
    site = got[0]
    dist = np.linalg.norm(((frac - frac[site] + 0.5) % 1 - 0.5) @ lat, axis=1)
    partner = int(np.flatnonzero((dist > 0.8) & (dist < 0.9))[0])
    assert site < partner
