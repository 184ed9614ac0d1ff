"""Core formulas against exact results nobody here wrote (fast; each one kills a named mutant of
scripts/mutants.py):

* the constants are the CODATA/SI 2019 values (scipy.constants);
* detailed balance, Gamma(a->b) / Gamma(b->a) = exp(-dE / kT), also where the kinetically resolved
  barrier max(E_KRA + dE/2, dE, 0) is clamped (dE > 2 E_KRA), in the engine and the reference;
* the lattice gas: the mean hop rate per ion is z Gamma (1 - c) exactly (a neighbour is empty
  with probability 1 - c in equilibrium, every configuration being equally likely), so
  D_uncorrelated = Gamma a^2 (1 - c) for both estimators, and the tracer correlation factor f(c)
  lies between the single-vacancy value and 1.

Statistical tolerances are 4 standard errors reported by the code itself (fixed seeds).
"""
import math

import numpy as np
import pytest
import scipy.constants as sc
from conftest import lattice_network

from kmc.analysis.transport import ReplicaSample, replica_values
from kmc.config import RunConfig
from kmc.constants import E_CHARGE_C, KB_EV_K, KB_J_K, beta_per_eV
from kmc.engine.model import ION, RateModel
from kmc.engine.simulation import Simulation
from kmc.runs.replicas import measure_temperature, replica_seeds
from kmc.runs.system import System
from kmc.validate import EXACT_CORRELATION_FACTORS

NU, KRA, T = 1e13, 0.2, 600.0


def test_constants_are_codata():
    assert KB_J_K == sc.k and E_CHARGE_C == sc.e
    assert KB_EV_K == pytest.approx(sc.k / sc.e, rel=1e-9)
    assert beta_per_eV(T) == pytest.approx(sc.e / (sc.k * T), rel=1e-9)


@pytest.mark.parametrize("kra, dE", [(0.1, 0.5), (0.4, 0.5), (0.0, 0.05), (0.3, 0.0)])
def test_detailed_balance_where_the_barrier_is_clamped(kra, dE):
    """bcc with corner (A) and body-centre (B) sites, B higher by dE, hops only A <-> B. With
    dE > 2 E_KRA the uphill barrier is dE itself and the downhill one 0 (rate = nu); otherwise
    E_KRA +- dE/2. Either way one ion's rates obey detailed balance exactly, in the engine
    (constant-rate tables: no interactions) and in the numpy reference."""
    net = lattice_network("bcc", (3, 3, 3), site_labels=["A", "B"])
    model = RateModel(net, NU, kra, site_energy_eV=[0.0, dE])
    beta = beta_per_eV(T)
    ev = net.events()
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    for klass in (0, 1):
        site = int(np.flatnonzero(net.site_class == klass)[0])
        occ = np.zeros(net.n_sites, np.int8)
        occ[site] = ION
        sim = Simulation(model, T, occupancy=occ, seed=1)
        sim.check_rates()  # engine == reference, event by event
        mine = src == site
        rates = sim.engine.rates[mine]
        assert len(rates) == 8 and np.all(rates == rates[0])
        if klass == 0:
            up = rates[0]
        else:
            down = rates[0]
        assert np.all(model.reference_rates(occ, T)[mine] == pytest.approx(rates[0], rel=1e-12))
    assert up / down == pytest.approx(math.exp(-dE * sc.e / (sc.k * T)), rel=1e-9)
    assert down <= NU and up <= NU       # a barrier is never negative
    if dE > 2 * kra:                     # clamped: downhill barrier 0, uphill barrier dE
        assert down == pytest.approx(NU, rel=1e-12)
    assert math.isclose(up, NU * math.exp(-beta * max(kra + dE / 2, dE, 0.0)), rel_tol=1e-12)


def lattice_gas(filling: float):
    net = lattice_network("sc", (6, 6, 6), a=1.0)
    return net, RateModel(net, NU, KRA), round(filling * net.n_sites)


@pytest.mark.parametrize("filling", [0.3, 0.7])
def test_lattice_gas_correlation_factor_bounds(filling):
    """MSD estimator of ``kmc run``: D_uncorrelated = Gamma a^2 (1 - c) exactly in expectation;
    f_vacancy(sc) <= f(c) <= 1."""
    net, model, n = lattice_gas(filling)
    c = n / net.n_sites
    rc = RunConfig(temperatures_K=(T,), replicas=8, seed=5, hops_per_ion=40.0,
                   equilibration_hops_per_ion=5.0)
    seeds = replica_seeds(rc.seed, 1, rc.replicas)[0]
    _, an, _ = measure_temperature(System(net, model, n), T, seeds, rc, net.dimensionality,
                                   net.volume_A3, 1.0, None)
    s = an.summary
    gamma = NU * math.exp(-KRA * sc.e / (sc.k * T))
    exact = gamma * 1.0 ** 2 * (1 - c) * 1e-16
    d, e = s["D_uncorrelated_cm2_s"], s["D_uncorrelated_err_cm2_s"]
    assert abs(d - exact) < 4 * e and e < 0.02 * exact, (d, e, exact)
    f, f_err = s["correlation_factor"], s["correlation_factor_err"]
    assert EXACT_CORRELATION_FACTORS["sc"] - 4 * f_err < f < 1.0 + 4 * f_err, (f, f_err)
    assert f_err < 0.05


def test_block_estimator_single_ion_and_lattice_gas():
    """The block (tutorial) estimator: D*/f = sum |hop|^2 / (2 d N t) is D_uncorrelated, exactly
    Gamma a^2 (1 - c) in expectation, for one ion (c -> 0) and at half filling."""
    gamma = NU * math.exp(-KRA * sc.e / (sc.k * T))
    for filling in (0.0, 0.5):
        net, model, n = lattice_gas(filling)
        n = max(n, 1)
        samples = []
        for seed in range(8):
            sim = Simulation(model, T, n_ions=n, seed=seed)
            sim.run(5 * n)
            sim.reset_measurement()
            sim.run(300 * n if n == 1 else 40 * n)
            samples.append(ReplicaSample.from_simulation(sim))
        v = replica_values(samples, 3, net.volume_A3, T)
        d_unc = v["D_tracer_cm2_s"] / v["correlation_factor"]
        m, se = d_unc.mean(), d_unc.std(ddof=1) / math.sqrt(len(d_unc))
        exact = gamma * (1 - (n if filling else 0) / net.n_sites) * 1e-16
        assert abs(m - exact) < 4 * se and se < 0.03 * exact, (filling, m, se, exact)


@pytest.mark.parametrize("J", [0.06, -0.04])
def test_detailed_balance_next_to_a_blocker(J):
    """One ion beside an immobile blocker on simple cubic (ion-blocker energy J for nearest
    neighbours only): a hop away from the blocker lowers the energy by J (no free neighbour of the
    ion's site touches the blocker), so Gamma(away) / Gamma(back) = exp(J / kT), with the hand-made
    barriers max(E_KRA -+ J/2, -+J, 0). Engine rates (which take the blocker's field from the
    model's site energies) against this hand count."""
    net = lattice_network("sc", (4, 4, 4), interaction_cutoff_A=1.01)
    model = RateModel(net, NU, KRA, mobile_blocker=[(1.01, J)])
    pos = net.positions
    b = 0
    s = int(np.flatnonzero(np.isclose(np.linalg.norm(pos - pos[b] - [1, 0, 0], axis=1), 0))[0])
    d = int(np.flatnonzero(np.isclose(np.linalg.norm(pos - pos[s] - [0, 1, 0], axis=1), 0))[0])
    ev = net.events()
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    rate = {}
    for a, c in ((s, d), (d, s)):
        occ = np.zeros(net.n_sites, np.int8)
        occ[b], occ[a] = 2, ION   # 2: a blocker
        sim = Simulation(model, T, occupancy=occ, seed=1)
        rate[a] = float(sim.engine.rates[np.flatnonzero((src == a) & (ev["ev_dst"] == c))[0]])
    beta = sc.e / (sc.k * T)
    assert rate[s] / rate[d] == pytest.approx(math.exp(beta * J), rel=1e-9)
    assert rate[s] == pytest.approx(NU * math.exp(-beta * max(KRA - J / 2, -J, 0.0)), rel=1e-9)
