"""Framework data files build the published cells (composition, orbit sizes, Li-Li distances)."""
import numpy as np
import pytest

from kmc.exceptions import ConfigError
from kmc.system.frameworks import framework_names, load_framework
from kmc.system.network import SiteNetwork


def network(fw, supercell=(1, 1, 1)):
    return SiteNetwork.from_sites(fw.structure.lattice.matrix, fw.mobile_frac, fw.mobile_labels,
                                  fw.mobile_occupancy, fw.mobile, supercell, fw.hop_cutoff_A,
                                  fw.exclusion_distance_A, fw.interaction_cutoff_A, fw.structure)


@pytest.mark.parametrize("name,formula,li_sites,li", [
    ("llzo-cubic", {"La": 24, "Zr": 16, "O": 96}, {"Li1": 24, "Li2": 96}, 56),
    ("llzo-cubic-latticegas", {"La": 24, "Zr": 16, "O": 96}, {"Li1": 24, "Li2": 96}, 56),
    ("llzo-tetragonal-latticegas", {"La": 24, "Zr": 16, "O": 96}, {"Li1": 8, "Li2": 16, "Li3": 32, "Li4": 16},
     56),
    ("lgps", {"Ge": 2, "P": 4, "S": 24}, {"Li1": 16, "Li2": 4, "Li3": 8, "Li4": 4}, 20),
])
def test_cells_have_the_published_composition_and_orbits(name, formula, li_sites, li):
    fw = load_framework(name)
    comp = fw.structure.composition.get_el_amt_dict()
    for el, n in formula.items():
        assert comp[el] == pytest.approx(n, abs=1e-6)
    assert fw.ions_per_cell == pytest.approx(li, abs=1e-3)
    labels, counts = np.unique(fw.mobile_labels, return_counts=True)
    assert dict(zip(labels.tolist(), counts.tolist())) == li_sites
    assert network(fw).dimensionality == 3
    # every hop class of the network has a barrier in the data file
    assert all(fw.barrier_for(h) is not None for h in network(fw).hop_class_names)


@pytest.mark.parametrize("name", ["llzo-cubic", "llzo-cubic-latticegas"])
def test_llzo_cubic_li_li_distances_match_the_reference(name):
    fw = load_framework(name)
    lengths = sorted(network(fw).hop_class_lengths.tolist())
    assert lengths == pytest.approx([0.87, 1.60], abs=0.01)  # 96h-96h split site, 24d-96h hop


def test_computed_llzo_cubic_is_its_parent_crystal():
    """The computed llzo-cubic (written in P1) holds the atoms and Li sites of the cited
    crystallography it was computed on (llzo-cubic-latticegas), in the same order."""
    comp, ref = load_framework("llzo-cubic"), load_framework("llzo-cubic-latticegas")
    assert comp.data["provenance"]["structure"] == ref.name
    assert np.allclose(comp.structure.lattice.matrix, ref.structure.lattice.matrix)
    assert [s.species_string for s in comp.structure] == [s.species_string for s in ref.structure]
    assert np.abs((comp.structure.frac_coords - ref.structure.frac_coords + 0.5) % 1 - 0.5).max() < 1e-6
    assert comp.mobile_labels == ref.mobile_labels
    assert np.abs((comp.mobile_frac - ref.mobile_frac + 0.5) % 1 - 0.5).max() < 1e-6


def test_lgps_channels_run_along_c():
    fw = load_framework("lgps")
    net = network(fw)
    short = net.hop_class_lengths < 2.5  # the 1.73 / 2.32 Å channel hops only
    keep = np.isin(net.hop_class, np.flatnonzero(short))
    from kmc.system.network import periodic_components

    _, dims = periodic_components(net.n_unit, net.hops.src[keep], net.hops.dst[keep],
                                  net.hops.image[keep])
    assert dims.max() == 1
    vec = net.hop_vectors[keep]
    assert np.abs(vec[:, 2]).sum() > np.abs(vec[:, :2]).sum() * 0.5


def test_unknown_framework_names_the_choices():
    with pytest.raises(ConfigError, match="llzo-cubic"):
        load_framework("llzo")
    assert set(framework_names()) == {"llzo-cubic", "llzo-tetragonal", "lgps", "lgps-computed",
                                      "llzo-cubic-latticegas", "llzo-tetragonal-latticegas"}
