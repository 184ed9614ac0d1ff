"""Shared test set-up: the hypothesis profile (derandomized: the same examples on every machine),
``lattice_network`` (a SiteNetwork on a teaching lattice, one site class unless told otherwise) and
the ``interacting_model`` fixture (a small RateModel with every energy term switched on)."""
import pytest
from hypothesis import Phase, settings

# property tests explore a fixed, reproducible set of examples (same on every machine and in CI)
settings.register_profile("kmc", derandomize=True, print_blob=True)
# scripts/mutants.py: the same examples, but no shrinking (a kill needs one failing example)
settings.register_profile("mutants", settings.get_profile("kmc"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("kmc")

from kmc.engine.model import RateModel
from kmc.system.lattices import teaching_lattice
from kmc.system.network import SiteNetwork


def lattice_network(name: str, supercell, a: float = 1.0, **kw) -> SiteNetwork:
    tl = teaching_lattice(name, a)
    kw.setdefault("hop_cutoff_A", 1.01 * tl.nn_distance_A)
    kw.setdefault("site_labels", ["site"] * len(tl.structure))
    return SiteNetwork.from_structure(tl.structure, "Li", supercell, **kw)


@pytest.fixture
def interacting_model():
    """bcc, 3x3x3 cells (54 sites, a = 1 Å), two site classes (A: cube corners at 0 eV, B: body
    centres at 0.07 eV), no exclusions, pair interactions of both signs (+0.04 eV for nearest
    neighbours at 0.866 Å, -0.015 eV for second neighbours at 1 Å), E_KRA 0.2 eV, nu 1e13 Hz and
    a field of 0.01 V/Å along x."""
    tl = teaching_lattice("bcc", 1.0)
    net = SiteNetwork.from_structure(tl.structure, "Li", (3, 3, 3),
                                     hop_cutoff_A=1.01 * tl.nn_distance_A,
                                     interaction_cutoff_A=1.01, site_labels=["A", "B"])
    return RateModel(net, 1e13, [0.2], site_energy_eV=[0.0, 0.07],
                     mobile_mobile=[(0.9, 0.04), (1.01, -0.015)], field_V_per_A=(0.01, 0.0, 0.0))
