"""CHGNet itself on a public tetragonal-LLZO vacancy hop (tests/data/llzo_t_path3, see its README).

STATUS (2026-12-05): NOT YET VALIDATED, so it runs only with KMC_CHGNET_NEB_TEST=1. Measured once
with the settings below (endpoints relaxed to 0.1 eV/Å, one image): the image relaxed to 0.025 eV
BELOW the loosely relaxed endpoints (band [-1426.7649, -1426.7898, -1426.7649] eV, 1685 s on the
loaded VM), so these settings are too loose to give the barrier; the full reference settings
(endpoints 0.03 eV/Å, 3 images, 0.05 eV/Å: scripts/neb_reference.py) give 0.2013 eV on this path but
took ~30 min here. Cheap settings that work still have to be found and measured.

A cheap version of the published calculation (one climbing image, loose force tolerances): the path
is symmetric, so the single image climbs to the saddle. It must reproduce the published CHGNet
barrier of this path (0.1724 eV, five images, sai-mat-group/mlips-migration-barriers) within the
difference the loose tolerances allow, and the band must peak inside the path.
"""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("chgnet")
pytest.importorskip("torch")

import os

from kmc.parametrize.calculators import get_calculator
from kmc.parametrize.neb import NEBSettings, neb_path, read_endpoint

pytestmark = [pytest.mark.mlip,
              pytest.mark.skipif(os.environ.get("KMC_CHGNET_NEB_TEST") != "1",
                                 reason="cheap CHGNet NEB settings not yet validated (see the module docstring)")]
DATA = Path(__file__).parent / "data" / "llzo_t_path3"
PUBLISHED_CHGNET_EV = 0.1724   # Dataset-2/Li7La3Zr2O12_3/CHGNET/energies.csv
GGA_EV = 0.195                 # Devi et al., arXiv:2508.06459
#: loose tolerances (0.1 eV/Å) leave the endpoints and the image a few 10 meV from their minima
TOLERANCE_EV = 0.04


def test_chgnet_neb_on_a_public_llzo_path(tmp_path):
    backend = get_calculator("chgnet", threads=2)
    settings = NEBSettings(n_images=1, fmax_eV_A=0.1, pre_fmax_eV_A=0.2, endpoint_fmax_eV_A=0.1,
                           max_steps=150, endpoint_max_steps=200)
    r = neb_path(read_endpoint(DATA / "initial" / "POSCAR"), read_endpoint(DATA / "final" / "POSCAR"),
                 backend, settings, cache_dir=tmp_path, log=lambda m: None)
    assert r.converged and r.moving_atom == 0
    e = np.array(r.energies_eV)
    assert np.argmax(e) == 1                       # the band peaks at the image, not an endpoint
    assert abs(r.dE_eV) < 0.02                     # symmetric path: equal endpoint energies
    barrier = max(r.barrier_forward_eV, r.barrier_backward_eV)
    assert barrier == pytest.approx(PUBLISHED_CHGNET_EV, abs=TOLERANCE_EV)
    assert r.E_KRA_eV == pytest.approx(e[1] - (e[0] + e[2]) / 2, abs=1e-9)
    # softer than GGA, as published for universal potentials (reported, not corrected)
    assert barrier < GGA_EV
