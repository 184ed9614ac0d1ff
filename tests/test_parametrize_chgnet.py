"""CHGNet itself on a public tetragonal-LLZO vacancy hop, cheap enough for every CI run.

Data: ``tests/data/llzo_t_path1_relaxed`` (see its README): the public endpoints of path
``Li7La3Zr2O12_1`` (sai-mat-group/mlips-migration-barriers) relaxed with CHGNet (BFGS, fixed cell,
0.03 eV/Å). The path is asymmetric (the initial endpoint lies 0.058 eV below the final one), so
forward barrier, backward barrier, dE and E_KRA are four different numbers and a swapped or wrong
barrier extraction cannot pass by accident.

The test relaxes a two-image climbing-image band between the committed endpoints (endpoint
relaxation skipped) and compares it with

* the GGA-NEB barrier of this path, 0.111 eV (Devi et al., arXiv:2508.06459), within the 0.05 eV
  the project accepts for an MLIP (issue 16; the five published MLIP barriers of the three public
  paths lie within 0.031 eV of GGA);
* the reference CHGNet run on the same relaxed endpoints (``scripts/neb_reference.py --images 3``,
  band to 0.05 eV/Å): forward 0.1122, backward 0.0538, E_KRA 0.0830, dE 0.0583 eV. Measured with
  the settings below: forward 0.1100, backward 0.0516, E_KRA 0.0808 eV, i.e. 2.2 meV below the
  reference on each, with dE equal to the last bit. The tolerance, 0.01 eV, is about four times that
  measured discretisation and convergence difference (docs/parametrize.md, Validation); measured
  mutations fall outside it: forward and backward swapped (forward 0.061 eV off), E_KRA from the
  lower endpoint (0.027 eV off), energy and forces scaled by 1.2 (forward 0.020 eV off).

Cost (measured, docs/parametrize.md): 150 CHGNet energy+force evaluations, about 3 min on one
core of the loaded shared VM.
"""
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from kmc.parametrize.calculators import Backend, get_calculator
from kmc.parametrize.neb import NEBSettings, neb_path, read_endpoint
from kmc.parametrize.toy import DoubleWell

DATA = Path(__file__).parent / "data" / "llzo_t_path1_relaxed"
GGA_EV = 0.111                 # Devi et al., arXiv:2508.06459, row Li7La3Zr2O12_1
GGA_TOLERANCE_EV = 0.05        # issue 16 acceptance for an MLIP against GGA
#: reference CHGNet run on the same relaxed endpoints (3 images, 0.05 eV/Å; docs/parametrize.md)
REFERENCE_EV = {"barrier_forward_eV": 0.1122, "barrier_backward_eV": 0.0538, "E_KRA_eV": 0.0830,
                "dE_eV": 0.0583}
#: ~4x the measured difference between these cheap settings and the reference run (2.2 meV)
BARRIER_TOLERANCE_EV = 0.01
#: four float32 steps of a 1427 eV total energy (CHGNet computes in float32: one step is 1.2e-4 eV)
ENERGY_TOLERANCE_EV = 5e-4
#: two climbing images from IDPP, endpoints kept as committed, the reference run's force tolerance
CHEAP = NEBSettings(n_images=2, fmax_eV_A=0.05, pre_fmax_eV_A=0.15, relax_endpoints=False, max_steps=150)
#: budget of CHGNet evaluations (measured: 150); one evaluation per image and FIRE step at most
MAX_FORCE_CALLS = 250


def _count_calls(monkeypatch, calculator) -> list:
    """Record every evaluation ``calculator`` really makes (whatever the NEB code reports)."""
    calls = []
    original = calculator.calculate

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(calculator, "calculate", counting)
    return calls


@pytest.fixture(scope="module")
def chgnet_backend():
    pytest.importorskip("torch")
    pytest.importorskip("chgnet")
    # one torch thread: reruns are bit-identical (measured twice); with two threads the float32
    # energies varied by one step (1.2e-4 eV) between runs, for ~30 % less wall time
    return get_calculator("chgnet", threads=1)


@pytest.mark.mlip
def test_chgnet_neb_on_the_relaxed_public_llzo_path_1(chgnet_backend, monkeypatch):
    initial, final = read_endpoint(DATA / "initial.extxyz"), read_endpoint(DATA / "final.extxyz")
    stored = [initial.get_potential_energy(), final.get_potential_energy()]   # from the README's run
    calls = _count_calls(monkeypatch, chgnet_backend.calculator)
    r = neb_path(initial, final, chgnet_backend, CHEAP, cache_dir=None, log=lambda m: None)
    e = np.array(r.energies_eV)

    # the calculator is the one the reference numbers belong to (CHGNet 0.3.0 weights)
    assert e[[0, -1]] == pytest.approx(stored, abs=ENERGY_TOLERANCE_EV), \
        f"endpoint energies {e[[0, -1]]} differ from the stored CHGNet 0.3.0 ones {stored}"
    # a converged band whose highest image lies inside the path, at a stationary point
    assert r.converged and r.max_force_eV_A <= CHEAP.fmax_eV_A
    assert r.moving_atom == 0 and 0 < int(np.argmax(e)) < len(e) - 1
    # the barrier extraction, direction by direction, against the reference run
    for key, ref in REFERENCE_EV.items():
        tol = ENERGY_TOLERANCE_EV if key == "dE_eV" else BARRIER_TOLERANCE_EV
        assert getattr(r, key) == pytest.approx(ref, abs=tol), key
    assert r.barrier_forward_eV == pytest.approx(e.max() - e[0], abs=1e-12)
    assert max(r.E_KRA_eV + r.dE_eV / 2, r.dE_eV, 0) == pytest.approx(r.barrier_forward_eV, abs=1e-12)
    # against DFT: the larger of the two barriers, as the published table gives it
    assert max(r.barrier_forward_eV, r.barrier_backward_eV) == pytest.approx(GGA_EV, abs=GGA_TOLERANCE_EV)
    # cost: what CI pays, counted at the calculator
    assert r.force_calls == len(calls) <= MAX_FORCE_CALLS


def test_neb_evaluates_each_image_once_per_step(monkeypatch):
    """ASE's NEB and FIRE ask for the band's forces three times per step; only one may cost."""
    well = DoubleWell()
    calls = _count_calls(monkeypatch, well)
    a, b = (Atoms("Li", positions=[[5 + s * 1.2, 5, 5]], cell=[10, 10, 10], pbc=True) for s in (-1, 1))
    settings = NEBSettings(n_images=3, fmax_eV_A=0.01, relax_endpoints=False)
    r = neb_path(a, b, Backend("well", well), settings, cache_dir=None, log=lambda m: None)
    assert r.converged
    # two endpoint energies, then per image at most one evaluation at the start and one per FIRE
    # step (r.steps counts each stage's start as a step; the climbing stage's start is known already)
    assert r.force_calls == len(calls) <= 2 + settings.n_images * (r.steps - 1)


@pytest.mark.mlip
def test_quiet_chgnet_says_nothing(capfd):
    """Under --quiet (and --json) the calculator's start-up lines ('CHGNet v0.3.0 initialized ...',
    'CHGNet will run on cpu') go nowhere; otherwise to stderr, never to stdout."""
    pytest.importorskip("torch")
    pytest.importorskip("chgnet")
    get_calculator("chgnet", threads=1, quiet=True)
    out, err = capfd.readouterr()
    assert "CHGNet" not in out + err
    get_calculator("chgnet", threads=1)
    out, err = capfd.readouterr()
    assert "CHGNet" not in out and "CHGNet" in err
