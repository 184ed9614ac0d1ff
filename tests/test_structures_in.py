"""Structures in: a cited Li3N CIF, CIF labels as site classes (independent of the atom order),
mixed Li/Al sites as seeded blockers, formula units from the ordered composition, and the warning
about overlapping mobile sites.

Reference values are the crystal's own geometry: in P6/mmm Li3N the in-plane Li(2)-Li(2)
distance is a/sqrt(3) and the Li(1)-Li(2) distance sqrt(a^2/3 + c^2/4).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

import kmc
from kmc.config import Config
from kmc.exceptions import StructureWarning
from kmc.runs.sources import formula_units
from kmc.runs.system import build_system

LI3N = Path(__file__).parent / "data" / "Li3N.cif"
A, C = 3.648, 3.875                   # Rabenau & Schulz (1976), as written in the fixture


def read(path: Path) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(str(path))


def cif_system(path: Path, supercell=(4, 4, 4), **lattice):
    cfg = Config.from_dict({"lattice": {"cif": str(path), "supercell": list(supercell),
                                        **lattice}, "model": {"barrier_eV": 0.3}})
    return build_system(cfg)


def with_rows(rows: list[str], tmp_path: Path, name: str) -> Path:
    """The Li3N fixture with its atom rows replaced by ``rows``."""
    text = LI3N.read_text()
    head = text[:text.index("N1 N 1 a")]
    path = tmp_path / name
    path.write_text(head + "\n".join(rows) + "\n")
    return path


ROWS = {"N1": "N1 N 1 a 0 0 0 1", "Li1": "Li1 Li 1 b 0 0 0.5 1",
        "Li2": "Li2 Li 2 c 0.33333333 0.66666667 0 1"}


def test_li3n_fixture_is_the_cited_structure():
    s = read(LI3N)
    sga = SpacegroupAnalyzer(s, symprec=0.01)
    assert sga.get_space_group_number() == 191 and sga.get_space_group_symbol() == "P6/mmm"
    assert s.lattice.abc == pytest.approx((A, A, C)) and s.lattice.gamma == pytest.approx(120)
    assert s.composition.get_el_amt_dict() == {"Li": 3.0, "N": 1.0}
    sym = sga.get_symmetrized_structure()
    wyckoff = {sym[idx[0]].species_string + w for idx, w in zip(sym.equivalent_indices,
                                                                sym.wyckoff_symbols)}
    assert wyckoff == {"N1a", "Li1b", "Li2c"}


def test_li3n_formula_classes_and_hops():
    s = cif_system(LI3N)
    net = s.network
    assert s.formula == "Li3N" and s.mobile_per_formula_unit == 3.0
    assert s.source.formula_units_per_cell == 1
    assert s.n_ions == 3 * 64 and net.n_sites == 3 * 64 and net.dimensionality == 3
    sites = dict(zip(net.class_names, np.bincount(net.unit_class).tolist()))
    assert sites == {"Li1": 1, "Li2": 2}               # the CIF's labels
    in_plane, across = A / math.sqrt(3), math.sqrt(A ** 2 / 3 + C ** 2 / 4)
    assert net.hop_class_names == [f"Li2-Li2@{in_plane:.2f}", f"Li1-Li2@{across:.2f}"]
    assert net.hop_class_lengths == pytest.approx([in_plane, across], abs=0.005)
    # directed hops per cell: each Li(2) has 3 Li(2) in its plane (2 x 3) and 6 Li(1) (2 x 6);
    # the Li(1) has 6 Li(2) in each of the two planes next to it (12)
    per_cell = net.summary()["hops_per_class"]
    assert per_cell[f"Li2-Li2@{in_plane:.2f}"]["per_cell"] == 6
    assert per_cell[f"Li1-Li2@{across:.2f}"]["per_cell"] == 12 + 12


def test_formula_units_from_the_ordered_part():
    assert formula_units(read(LI3N)) == 1                 # not 1/2 (pymatgen's N2)
    li3n_2 = read(LI3N) * (1, 1, 2)
    assert formula_units(li3n_2) == 2
    half = read(LI3N)
    half.replace(0 if half[0].species_string == "Li" else 1, {"Li": 0.5})  # a partial Li site
    assert formula_units(half) == 1                      # from N alone


def test_class_names_do_not_depend_on_atom_order(tmp_path):
    ref = cif_system(LI3N).network
    for order in (["Li2", "N1", "Li1"], ["Li1", "Li2", "N1"]):
        net = cif_system(with_rows([ROWS[k] for k in order], tmp_path, "-".join(order) + ".cif"),
                         ).network
        assert net.class_names == ref.class_names
        assert net.hop_class_names == ref.hop_class_names
        assert np.bincount(net.unit_class).tolist() == np.bincount(ref.unit_class).tolist()
    # a structure without labels: classes are the symmetry orbits, named the same whatever the
    # order of its atoms
    species, frac = ["N", "Li", "Li", "Li"], [[0, 0, 0], [0, 0, 0.5], [1 / 3, 2 / 3, 0],
                                             [2 / 3, 1 / 3, 0]]
    lat = Lattice.hexagonal(A, C)
    names = []
    for perm in ([0, 1, 2, 3], [3, 2, 0, 1], [2, 0, 3, 1]):
        st = Structure(lat, [species[i] for i in perm], [frac[i] for i in perm])
        net = kmc.System.from_structure(st, barrier_eV=0.3, supercell=[4, 4, 4]).network
        names.append((net.class_names, net.hop_class_names))
    assert names[0] == names[1] == names[2]
    assert names[0][0] == ["Li1_1b", "Li2_2c"]


@pytest.mark.filterwarnings("ignore::kmc.exceptions.ResultWarning")  # short runs on purpose
@pytest.mark.parametrize("al_first", [False, True])
def test_mixed_li_al_site_blocks_that_fraction(tmp_path, al_first):
    mixed = ["Li1 Li 1 b 0 0 0.5 0.8", "Al1 Al 1 b 0 0 0.5 0.2"]
    rows = [ROWS["N1"], *(mixed[::-1] if al_first else mixed), ROWS["Li2"]]
    s = cif_system(with_rows(rows, tmp_path, "mixed.cif"), supercell=(5, 5, 5))
    net = s.network
    assert net.class_names == ["Li1", "Li2"]                  # the Li row's label, not Al1
    assert s.blocked_counts == {"Li1": 25}                    # 0.2 x 125 Li(1) sites
    assert s.n_ions == 350                                    # (2 + 0.8) x 125
    assert s.formula == "Li2.8Al0.2N"
    blocked, _ = s.disorder(np.random.SeedSequence(7))
    cls = np.array(net.class_names)[net.site_class]
    assert blocked.sum() == 25 and set(cls[blocked]) == {"Li1"}
    again, _ = s.disorder(np.random.SeedSequence(7))
    other, _ = s.disorder(np.random.SeedSequence(8))
    assert np.array_equal(blocked, again) and not np.array_equal(blocked, other)
    # a run sees them: blockers per class, and vacancies counted on the free sites only
    r = kmc.run(kmc.System.from_config(s_config(rows, tmp_path)), hops_per_ion=3, replicas=2,
                seed=1)
    assert r.network["blocked_per_class"] == {"Li1": 25}
    assert r.results[0]["percolation"]["blocked_sites"] == 25
    assert r.network["n_ions"] == 375 - 25 - 1               # one vacancy among the free sites


def s_config(rows, tmp_path) -> dict:
    return {"lattice": {"cif": str(with_rows(rows, tmp_path, "mixed.cif")),
                        "supercell": [5, 5, 5]},
            "occupancy": {"vacancies": 1}, "model": {"barrier_eV": 0.3},
            "run": {"equilibration_hops_per_ion": 1}}


def split_site_structure() -> Structure:
    # Li on 1a and a Li pair split by 0.6 Å around the body centre (occupancy 1/2 each)
    lat = Lattice.cubic(3.0)
    s = Structure(lat, ["Li", {"Li": 0.5}, {"Li": 0.5}, "O"],
                  [[0, 0, 0], [0.4, 0.5, 0.5], [0.6, 0.5, 0.5], [0.5, 0, 0]],
                  labels=["Li1", "Li2", "Li2", "O1"])
    return s


def test_close_sites_warn_with_the_pairs_and_the_fix():
    with pytest.warns(StructureWarning) as rec:
        kmc.System.from_structure(split_site_structure(), barrier_eV=0.3,
                                  supercell=[3, 3, 3]).build()
    msg = str(rec[0].message)
    assert "Li2-Li2 at 0.60 Å (1 pairs per cell)" in msg
    assert "exclusion_distance_A to at least 0.61 Å" in msg
    assert len([w for w in rec if w.category is StructureWarning]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", StructureWarning)
        kmc.System.from_structure(split_site_structure(), barrier_eV=0.3, supercell=[3, 3, 3],
                                  exclusion_distance_A=0.7).build()
        # teaching lattices are abstract: bcc with a = 1 has neighbours at 0.87, no warning
        build_system(Config.from_dict({"lattice": {"builtin": "bcc", "supercell": [4, 4, 4]},
                                       "occupancy": {"vacancies": 1}}))


def test_partly_occupied_framework_sites_warn_once_with_the_fix():
    lat = Lattice.cubic(3.0)
    partial = Structure(lat, ["Li", {"Li": 0.5}, {"O": 0.9}],
                        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]], labels=["Li1", "Li2", "O1"])
    with pytest.warns(StructureWarning) as rec:
        kmc.System.from_structure(partial, barrier_eV=0.3, supercell=[3, 3, 3]).build()
    msgs = [str(w.message) for w in rec if w.category is StructureWarning and "framework" in str(w.message)]
    assert len(msgs) == 1 and "O1 (0.9)" in msgs[0] and "ordered supercell" in msgs[0]
    full = Structure(lat, ["Li", {"Li": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]],
                     labels=["Li1", "Li2", "O1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", StructureWarning)
        kmc.System.from_structure(full, barrier_eV=0.3, supercell=[3, 3, 3]).build()
