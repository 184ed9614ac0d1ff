"""Extreme rates: when every rate underflows to zero, or the total rate is so small that the clock
would overflow, a run ends at once with a NoEventsError sentence that names the cause and the fix
(CLI: exit 2), never a hang, an infinite or NaN time, or a division by zero; when only some rates
underflow the run goes on with the others."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import lattice_network

from kmc.cli.main import main
from kmc.config import Config
from kmc.constants import KB_EV_K
from kmc.engine.model import RateModel
from kmc.engine.simulation import CLOCK_LIMIT_S, Simulation
from kmc.exceptions import NoEventsError
from kmc.runs.runner import run_config


def test_every_rate_underflowing_is_a_clear_no_events_error():
    net = lattice_network("sc", (4, 4, 4))
    for T, barrier in ((0.01, 0.2), (300.0, 500.0)):
        sim = Simulation(RateModel(net, 1e13, barrier), T, n_ions=10, seed=0)
        assert sim.engine.total_rate == 0.0
        with pytest.raises(NoEventsError, match=r"underflows to zero .*raise the temperature or "
                                                r"lower the barriers\.$"):
            sim.run(10)
        assert sim.total_hops == 0 and sim.time == 0.0


def test_a_full_lattice_says_add_vacancies_not_raise_the_temperature():
    net = lattice_network("sc", (3, 3, 3))
    with pytest.raises(NoEventsError, match=r"all 27 sites are occupied .*add vacancies"):
        Simulation(RateModel(net, 1e13, 0.2), 600.0, n_ions=27, seed=0).run(1)
    blocked = np.zeros(net.n_sites, bool)
    blocked[:26] = True                              # one ion among blockers, no empty site
    with pytest.raises(NoEventsError, match=r"by 1 ion and 26 blockers"):
        Simulation(RateModel(net, 1e13, 0.2), 600.0, n_ions=1, blocked=blocked, seed=0).run(1)


def test_excluded_empty_sites_are_named_as_the_cause():
    """Ions whose only empty neighbours are closed by hard-core exclusions."""
    net = lattice_network("chain", (4, 1, 1), exclusion_distance_A=1.01, hop_cutoff_A=1.01)
    occ = np.array([1, 0, 1, 0], np.int8)            # every empty site has two ion neighbours
    with pytest.raises(NoEventsError, match=r"closed by hard-core exclusions.*lower the "
                                            r"exclusion distance"):
        Simulation(RateModel(net, 1e13, 0.2), 600.0, occupancy=occ).run(1)


def test_rates_just_above_underflow_stop_before_the_clock_overflows():
    """740 kT: every rate is a subnormal number; the waiting time would overflow the clock to inf
    and then NaN. The run stops with a NoEventsError and a finite clock instead."""
    net = lattice_network("sc", (4, 4, 4))
    T = 300.0
    sim = Simulation(RateModel(net, 1e13, 740 * KB_EV_K * T), T, n_ions=1, seed=0)
    assert 0.0 < sim.engine.total_rate < 1e-300
    with pytest.raises(NoEventsError, match=r"clock would pass 1e\+300 s; raise the temperature"):
        sim.run(5)
    assert math.isfinite(sim.time) and sim.time <= CLOCK_LIMIT_S
    slow = Simulation(RateModel(net, 1e13, 600 * KB_EV_K * T), T, n_ions=1, seed=0)
    assert slow.run(5) == 5 and 1e200 < slow.time < CLOCK_LIMIT_S   # slow but fine: it runs


def test_some_rates_underflowing_still_run():
    """Second-neighbour hops with a 100 eV barrier never happen; first-neighbour hops go on."""
    net = lattice_network("sc", (4, 4, 4), hop_cutoff_A=1.5)
    names = net.event_class_names
    assert len(names) == 2                            # site-site@1.00 and site-site@1.41
    model = RateModel(net, 1e13, [0.2 if n.endswith("@1.00") else 100.0 for n in names])
    sim = Simulation(model, 400.0, n_ions=20, seed=1)
    rates = sim.engine.rates
    assert np.any(rates == 0.0) and np.any(rates > 0.0)
    st = sim.engine.state
    for _ in range(200):
        before = st["disp"].copy()
        sim.run(1)
        step = np.linalg.norm(st["disp"] - before, axis=1)
        assert np.allclose(step[step > 0], 1.0)       # only nearest-neighbour hops
    assert sim.total_hops == 200 and math.isfinite(sim.time) and sim.time > 0


def test_a_run_that_freezes_partway_ends_with_the_error_not_a_hang():
    """bcc with deep traps on the body centres: once the ion falls into one, leaving costs 100 eV
    (underflow at 300 K): the run stops with NoEventsError after a few hops."""
    config = Config.from_dict({
        "lattice": {"builtin": "bcc", "supercell": [3, 3, 3], "site_labels": ["A", "B"]},
        "occupancy": {"ions": 1},
        "model": {"barrier_eV": 0.1, "site_energies_eV": {"B": -100.0}},
        "run": {"temperatures_K": [300.0], "hops_per_ion": 50, "replicas": 2, "seed": 1},
    })
    with pytest.raises(NoEventsError, match=r"no hop can happen at 300 K: the rate of every "
                                            r"possible hop underflows to zero \(the lowest "
                                            r"barrier, 100 eV"):
        run_config(config)


def test_partial_underflow_through_the_command_line(tmp_path, capsys):
    """A per-class barrier table with one class far out of reach: kmc run succeeds."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[lattice]\nbuiltin = "sc"\nsupercell = [4, 4, 4]\nhop_cutoff_A = 1.5\n'
                   '[occupancy]\nfilling = 0.3\n[model.barrier_eV]\n"site-site@1.00" = 0.2\n'
                   '"site-site@1.41" = 80.0\n[run]\ntemperatures_K = [500.0]\nhops_per_ion = 20\n'
                   'replicas = 2\n')
    assert main(["run", str(cfg), "--json", "--quiet"]) == 0
    r = json.loads(capsys.readouterr().out)["results"][0]
    assert r["D_tracer_cm2_s"] > 0 and math.isfinite(r["D_tracer_cm2_s"])
