"""Shared fixtures: small networks built through the public path."""
import pytest
from hypothesis import settings

# property tests explore a fixed, reproducible set of examples (same on every machine and in CI)
settings.register_profile("kmc", derandomize=True, print_blob=True)
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
    """Simple cubic 6^3 with nn exclusion-free interactions of both signs and two site classes."""
    tl = teaching_lattice("bcc", 1.0)
    net = SiteNetwork.from_structure(tl.structure, "Li", (3, 3, 3),
                                     hop_cutoff_A=1.01 * tl.nn_distance_A,
                                     interaction_cutoff_A=1.01, site_labels=["A", "B"])
    return RateModel(net, 1e13, [0.2], site_energy_eV=[0.0, 0.07],
                     mobile_mobile=[(0.9, 0.04), (1.01, -0.015)], field_V_per_A=(0.01, 0.0, 0.0))
