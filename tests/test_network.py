"""Site networks: classes from symmetry, hop classes, dimensionality, exclusions, ASE input."""
import numpy as np
import pytest
from conftest import lattice_network
from pymatgen.core import Lattice, Structure

from kmc.exceptions import StructureError
from kmc.system.lattices import LATTICES, teaching_lattice
from kmc.system.network import SiteNetwork


@pytest.mark.parametrize("name", LATTICES)
def test_teaching_lattices_coordination_and_dimensionality(name):
    tl = teaching_lattice(name, 2.0)
    net = lattice_network(name, (4, 4, 4) if tl.dimensionality == 3 else (6, 6, 1), a=2.0)
    ev = net.events()
    deg = np.diff(ev["out_off"])
    assert np.all(deg == tl.coordination)
    assert net.dimensionality == tl.dimensionality
    lengths = np.linalg.norm(net.hop_vectors, axis=1)
    assert np.allclose(lengths, tl.nn_distance_A)
    # every event's reverse goes back: dst(rev(e)) = src(e)
    src = np.repeat(np.arange(net.n_sites), deg)
    assert np.array_equal(ev["ev_dst"][ev["ev_rev"]], src)


def test_positions_and_hop_vectors_agree_with_minimum_image():
    net = lattice_network("fcc", (3, 3, 3), a=4.0)
    ev = net.events()
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    vec = net.templates.vec1[ev["ev_tmpl"]]
    L = net.lattice
    d = net.positions[ev["ev_dst"]] - net.positions[src]
    frac = d @ np.linalg.inv(L)
    d = (frac - np.round(frac)) @ L
    assert np.allclose(d, vec, atol=1e-9)


def test_symmetry_classes_from_spglib():
    # Li on 1a and 3c of a cubic cell with O at 1b: two Wyckoff orbits
    s = Structure(Lattice.cubic(4.0), ["Li", "Li", "Li", "Li", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0.5]])
    net = SiteNetwork.from_structure(s, "Li", (2, 2, 2), hop_cutoff_A=2.9)
    assert len(net.class_names) == 2
    assert sorted(np.bincount(net.unit_class).tolist()) == [1, 3]
    assert all(name.startswith("Li") for name in net.class_names)
    assert len(net.hop_class_names) == 2  # corner-face at 2.83 Å, face-face at 2.83 Å


def test_from_ase_atoms_matches_pymatgen():
    from ase.build import bulk

    atoms = bulk("Li", "bcc", a=3.5, cubic=True)
    net = SiteNetwork.from_atoms(atoms, "Li", supercell=(3, 3, 3), hop_cutoff_A=3.1)
    assert net.n_sites == 54 and net.dimensionality == 3
    assert np.all(np.diff(net.events()["out_off"]) == 8)


def test_layered_and_chain_dimensionality_in_3d_cells():
    lat = Lattice.tetragonal(3.0, 10.0)
    layer = Structure(lat, ["Li"], [[0, 0, 0]])
    assert SiteNetwork.from_structure(layer, "Li", (3, 3, 2), hop_cutoff_A=3.1).dimensionality == 2
    chain = Structure(Lattice.orthorhombic(3.0, 8.0, 9.0), ["Li"], [[0, 0, 0]])
    assert SiteNetwork.from_structure(chain, "Li", (3, 2, 2), hop_cutoff_A=3.1).dimensionality == 1
    # a dimer per cell, far from its images: a finite cluster
    dimer = Structure(Lattice.cubic(8.0), ["Li", "Li"], [[0, 0, 0], [0.25, 0, 0]])
    assert SiteNetwork.from_structure(dimer, "Li", (2, 2, 2), hop_cutoff_A=2.1).dimensionality == 0


def test_exclusion_and_interaction_shells():
    net = lattice_network("sc", (4, 4, 4), exclusion_distance_A=1.5, interaction_cutoff_A=1.8)
    assert len(net.exclusions) == 6 + 12  # nn and 2nd-nn closer than 1.5 Å
    assert np.allclose(net.shell_lengths, [1.0, 1.41, 1.73])


def test_bad_networks_say_what_to_change():
    tl = teaching_lattice("sc", 1.0)
    with pytest.raises(StructureError, match="raise hop_cutoff_A"):
        SiteNetwork.from_structure(tl.structure, "Li", (3, 3, 3), hop_cutoff_A=0.5)
    with pytest.raises(StructureError, match="has no Na sites"):
        SiteNetwork.from_structure(tl.structure, "Na", (3, 3, 3))
    with pytest.raises(StructureError, match="own periodic image"):
        SiteNetwork.from_structure(tl.structure, "Li", (1, 3, 3), hop_cutoff_A=1.01)


def test_percolating_components_with_blockers():
    net = lattice_network("square", (8, 8, 1))
    labels, dims = net.components()
    assert len(dims) == 1 and dims[0] == 2
    blocked = np.zeros(net.n_sites, bool)
    # block a full column of sites: the square lattice becomes 1D strips
    x = np.round(net.positions[:, 0]).astype(int)
    blocked[x == 0] = True
    labels, dims = net.components(blocked)
    free = labels[~blocked]
    assert dims[np.unique(free)].max() == 1


def test_components_of_slab_rod_and_boundary_dimer_and_any_edge_order():
    """Blocked planes cut a periodic sc 6^3 network into pieces of known dimensionality: without
    the plane x = 0 a slab (2), without x = 0 and y = 0 a rod along z (1); two sites joined only
    across the periodic boundary (z = 0 and z = 5), their other neighbours blocked, are a finite
    cluster (0). The answer must not depend on the order of the edges (a shuffled list)."""
    from kmc.system.network import periodic_components

    net = lattice_network("sc", (6, 6, 6))
    ijk = np.round(net.positions).astype(int)
    pair = [np.flatnonzero(np.all(ijk == (3, 3, z), axis=1))[0] for z in (0, 5)]
    for planes, dim in (((0,), 2), ((0, 1), 1)):
        blocked = np.any(ijk[:, list(planes)] == 0, axis=1)
        for z in (0, 5):
            near = np.abs(ijk - (3, 3, z))
            near[:, 2] = np.minimum(near[:, 2], 6 - near[:, 2])          # periodic along z
            blocked |= (near.sum(axis=1) == 1) & (near.max(axis=1) == 1)  # its six neighbours
        blocked[pair] = False
        labels, dims = net.components(blocked)
        free = np.flatnonzero(~blocked)
        assert sorted(dims[np.unique(labels[free])].tolist()) == [0, dim]
        assert labels[pair[0]] == labels[pair[1]] and dims[labels[pair[0]]] == 0
        assert (labels[free] == labels[pair[0]]).sum() == 2
        src, dst = net._tile(net.hops)
        image = np.floor_divide(net._cells[:, None, :] + net.hops.image[None, :, :],
                                np.array(net.supercell)).reshape(-1, 3)
        keep = ~blocked[src] & ~blocked[dst]
        order = np.random.default_rng(1).permutation(int(keep.sum()))
        shuffled = periodic_components(net.n_sites, src[keep][order], dst[keep][order],
                                       image[keep][order])
        assert np.array_equal(shuffled[0], labels) and np.array_equal(shuffled[1], dims)
