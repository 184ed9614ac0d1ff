"""Engine invariants: incremental rates equal a full numpy recompute, conservation laws,
detailed balance, reproducibility and bit-exact checkpoint/restore."""
import pickle

import numpy as np
import pytest
from conftest import lattice_network
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from kmc.constants import KB_EV_K
from kmc.engine.model import BLOCKER, ION, RateModel
from kmc.engine.simulation import Simulation
from kmc.exceptions import ConfigError, NoEventsError, StructureError
from kmc.system.network import SiteNetwork


def test_incremental_rates_equal_full_recompute(interacting_model):
    sim = Simulation(interacting_model, 500.0, n_ions=20, seed=3)
    for _ in range(400):
        sim.run(1)
        sim.check_rates()


def test_incremental_rates_with_exclusions_blockers_and_site_disorder():
    net = lattice_network("fcc", (3, 3, 3), exclusion_distance_A=0.75, interaction_cutoff_A=1.01)
    model = RateModel(net, 1e13, 0.3, mobile_mobile=[(1.01, 0.03)],
                      mobile_blocker=[(0.75, 0.1), (1.01, -0.05)])
    blocked = np.zeros(net.n_sites, bool)
    blocked[np.random.default_rng(0).choice(net.n_sites, 6, replace=False)] = True
    sim = Simulation(model, 700.0, n_ions=8, blocked=blocked, seed=11)
    assert not sim.engine.static  # blocker interactions make site energies vary
    for _ in range(300):
        sim.run(1)
        sim.check_rates()
        occ = sim.occupancy
        assert np.all(occ[blocked] == BLOCKER)
        # hard-core exclusion: no two occupied sites closer than the exclusion distance
        off, nbr, _ = net.csr(net.exclusions)
        for s in np.flatnonzero(occ == ION):
            assert np.all(occ[nbr[off[s]:off[s + 1]]] == 0)


def test_rate_memo_under_churn_never_returns_a_stale_rate():
    """Continuous per-site energies give every event its own dE: far more (class, dE) pairs than
    the engine's 1024-slot exp() memo holds, so slots are overwritten all the time.  Rates must
    still equal the numpy reference, and equal bit for bit those of a fresh engine (empty memo)."""
    net = lattice_network("fcc", (6, 6, 6), interaction_cutoff_A=1.01)
    offsets = np.random.default_rng(4).normal(0.0, 0.05, net.n_sites)
    model = RateModel(net, 1e13, 0.25, mobile_mobile=[(1.01, 0.02)],
                      site_energy_offset_eV=offsets)
    sim = Simulation(model, 600.0, n_ions=net.n_sites // 2, seed=8)
    assert len(np.unique(sim.engine.rates)) > 2 * 1024
    for _ in range(60):
        sim.run(25)
        sim.check_rates()
    fresh = pickle.loads(pickle.dumps(sim.engine))
    assert np.array_equal(fresh.rates, sim.engine.rates)


def test_large_tree_stays_exact_where_the_engine_prefetches_root_paths():
    """From 2^15 sites on, marking a dirty site also prefetches its tree path and the descent
    prefetches four levels ahead.  On such a tree the incremental rates must still equal the numpy
    reference, and the tree must equal, bit for bit, one rebuilt from the occupancy."""
    net = lattice_network("sc", (32, 32, 32), interaction_cutoff_A=1.01)
    assert net.n_sites >= 2 ** 15
    model = RateModel(net, 1e13, 0.25, mobile_mobile=[(1.01, 0.05)])
    sim = Simulation(model, 600.0, n_ions=net.n_sites // 2, seed=5)
    for _ in range(20):
        sim.run(500)
        sim.check_rates()
    fresh = pickle.loads(pickle.dumps(sim.engine))  # rebuilds fields, rates and tree from occ
    assert np.array_equal(fresh.site_totals, sim.engine.site_totals)
    assert fresh.total_rate == sim.engine.total_rate


def random_network(draw):
    """A random 2x2x2 network with 2-7 sites per cubic cell, valid by construction: each site
    sits in its own cell of a 4x4x4 grid (spacing a/4 >= 0.75 Å) and is shifted from the cell's
    centre by at most 0.1 Å per axis, so no two sites are closer than 0.75 - 2 sqrt(3) 0.1 > 0.3 Å.
    Returns None (and the example is discarded with ``assume``, counted by ``event``) only when
    the network itself is refused with a StructureError (e.g. no hop within the cutoff)."""
    n = draw(st.integers(2, 7))
    a = draw(st.floats(3.0, 5.0))
    cells = np.array(draw(st.lists(st.integers(0, 63), min_size=n, max_size=n, unique=True)))
    jitter = np.array(draw(st.lists(st.tuples(*[st.floats(-0.1, 0.1)] * 3), min_size=n,
                                    max_size=n)))
    grid = np.stack([cells // 16, (cells // 4) % 4, cells % 4], axis=1)
    frac = ((grid + 0.5) / 4.0 + jitter / a) % 1.0
    s = Structure(Lattice.cubic(a), ["Li"] * n, frac)
    assert np.min(s.distance_matrix + np.eye(n) * 99) > 0.3
    cutoff = draw(st.floats(2.0, 3.5))
    excl = draw(st.sampled_from([0.0, 1.2]))
    try:
        return SiteNetwork.from_structure(s, "Li", (2, 2, 2), hop_cutoff_A=cutoff,
                                          exclusion_distance_A=excl, interaction_cutoff_A=3.0,
                                          site_labels=[f"c{i % 2}" for i in range(n)])
    except StructureError as e:
        event(f"network refused: {str(e).split(';')[0][:40]}")
        return None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_networks_keep_invariants(data):
    """Every example that hypothesis does not discard checks the invariants on at least one
    state: either hops happen (ion count and identity, one hop per step, exclusions, incremental
    rates == numpy reference), or the engine says no hop can happen and the reference agrees.
    Run with ``--hypothesis-show-statistics`` to see the fraction of examples discarded."""
    net = random_network(data.draw)
    assume(net is not None)
    e = data.draw(st.lists(st.floats(-0.1, 0.1), min_size=2, max_size=2))
    model = RateModel(net, 1e13, data.draw(st.floats(0.0, 0.4)),
                      site_energy_eV=np.array(e[:len(net.class_names)]),
                      mobile_mobile=[(3.0, data.draw(st.floats(-0.05, 0.05)))])
    # no more ions than the exclusions can hold (placement is checked by its own test)
    most = net.n_sites // 2 if len(net.exclusions) == 0 else max(1, net.n_sites // 8)
    n_ions = data.draw(st.integers(1, max(1, most)))
    T = data.draw(st.floats(200, 2000))
    try:
        sim = Simulation(model, T, n_ions=n_ions, seed=data.draw(st.integers(0, 2**32)))
    except ConfigError as e:  # cannot place that many ions under these exclusions
        assert "could be placed" in str(e) or "do not fit" in str(e), e
        event("ions could not be placed")
        assume(False)
    ions_before = np.sort(sim.engine.state["ion_site"].copy())
    assert len(ions_before) == n_ions
    t_prev = sim.time
    hops = 0
    for _ in range(60):
        occ_before = sim.occupancy.copy()
        try:
            sim.run(1)
        except NoEventsError:
            # frozen: the independent numpy reference must agree that no event has a rate
            assert not np.any(model.reference_rates(occ_before, T) > 0)
            break
        hops += 1
        assert sim.time > t_prev
        t_prev = sim.time
        occ = sim.occupancy
        st_ = sim.engine.state
        assert np.sum(occ == ION) == n_ions                       # ion count conserved
        assert np.array_equal(np.flatnonzero(occ == ION), np.sort(st_["ion_site"]))
        assert np.array_equal(st_["ion_at"][st_["ion_site"]], np.arange(n_ions))  # identity
        assert np.sum(occ != occ_before) == 2                     # one hop: one site left, one filled
        off, nbr, _ = net.csr(net.exclusions)
        for s in np.flatnonzero(occ == ION):
            assert np.all(occ[nbr[off[s]:off[s + 1]]] == 0)
        sim.check_rates()
    event("hops happened" if hops else "frozen from the start")


def test_detailed_balance_of_forward_and_backward_rates(interacting_model):
    """Gamma(a->b) / Gamma(b->a) = exp(-(E_b - E_a)/kT) for every possible hop (field off)."""
    model = RateModel(interacting_model.network, 1e13, [0.2], site_energy_eV=[0.0, 0.07],
                      mobile_mobile=[(0.9, 0.04), (1.01, -0.015)])
    T = 450.0
    sim = Simulation(model, T, n_ions=25, seed=1)
    net = model.network
    ev = net.events()
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    rates = sim.engine.rates
    occ = sim.occupancy.copy()
    checked = 0
    for e in np.flatnonzero(rates > 0)[:60]:
        a, b = src[e], ev["ev_dst"][e]
        after = occ.copy()
        after[a], after[b] = 0, ION
        back = model.reference_rates(after, T)[ev["ev_rev"][e]]
        dE = model.energy(after) - model.energy(occ)
        assert rates[e] / back == pytest.approx(np.exp(-dE / (KB_EV_K * T)), rel=1e-9)
        checked += 1
    assert checked > 20


def test_detailed_balance_in_a_field():
    net = lattice_network("sc", (4, 4, 4))
    E = 0.02
    model = RateModel(net, 1e13, 0.3, field_V_per_A=(E, 0.0, 0.0))
    rates = model.reference_rates(np.where(np.arange(64) == 0, ION, 0).astype(np.int8), 300.0)
    vec = net.hop_vectors[net.events()["ev_tmpl"][:6]]
    r = rates[:6]
    plus, minus = r[np.argmax(vec[:, 0])], r[np.argmin(vec[:, 0])]
    # forward dE = -qEa, backward +qEa: ratio exp(qEa/kT) (Ea = E_KRA -/+ qEa/2)
    assert plus / minus == pytest.approx(np.exp(E * 1.0 / (KB_EV_K * 300.0)), rel=1e-12)


def test_same_seed_same_trajectory_and_different_seed_differs(interacting_model):
    a = Simulation(interacting_model, 600.0, n_ions=30, seed=7)
    b = Simulation(interacting_model, 600.0, n_ions=30, seed=7)
    c = Simulation(interacting_model, 600.0, n_ions=30, seed=8)
    for s in (a, b, c):
        s.run(3000)
    assert np.array_equal(a.displacements, b.displacements) and a.time == b.time
    assert not np.array_equal(a.displacements, c.displacements)


def test_checkpoint_restore_is_bit_exact(interacting_model):
    ref = Simulation(interacting_model, 600.0, n_ions=30, seed=9)
    ref.run(5000)
    split = Simulation(interacting_model, 600.0, n_ions=30, seed=9)
    split.run(2000)
    restored = Simulation.restore(split.checkpoint())
    del split
    restored.run(3000)
    for key in ("occ", "ion_at", "ion_site", "disp", "hops", "sumsq", "clock", "class_t"):
        assert np.array_equal(ref.engine.state[key], restored.engine.state[key]), key
    assert np.array_equal(ref.engine.site_totals, restored.engine.site_totals)


@pytest.mark.parametrize("budget", [1, 7, 10 ** 9])
def test_frames_recorded_inside_the_engine_equal_stops_at_each_mark(interacting_model, budget):
    """``run_marks`` (every frame written by the engine in one call) against the per-frame
    loop it replaces (``run`` up to each mark, then read the state): the same frames, sums and
    final state bit for bit, however the hop budget splits the marks over calls."""
    marks = 4e-12 * np.arange(1, 41) ** 1.5  # uneven spacing, 1647 hops in all
    marks = np.sort(np.concatenate([marks, marks[::8] + 1e-17]))  # marks without a hop between
    ref = Simulation(interacting_model, 600.0, n_ions=30, seed=21)
    want = []
    for t in marks:
        while ref.time < t:
            ref.run(10 ** 9, t)
        st = ref.engine.state
        want.append((st["disp"].copy(), st["sumsq"].copy(), int(st["hops"].sum())))
    sim = Simulation(interacting_model, 600.0, n_ions=30, seed=21)
    frames = np.full((len(marks), 30, 3), np.nan)
    k = calls = 0
    while k < len(marks):
        done, dk, len2, moves = sim.run_marks(marks[k:], frames[k:], budget)
        assert done <= budget
        calls += 1
        if dk:
            disp, sumsq, n_moves = want[k + dk - 1]
            assert moves == n_moves
            assert len2 == pytest.approx(float(sumsq.sum()), rel=1e-13)
        k += dk
    hops = int(sim.engine.state["counters"][0])
    assert hops > 1000 and calls >= hops // budget and (calls == 1) == (budget == 10 ** 9)
    assert np.array_equal(frames, np.array([w[0] for w in want]))
    for key in ("occ", "ion_at", "ion_site", "disp", "hops", "sumsq", "clock", "class_t"):
        assert np.array_equal(ref.engine.state[key], sim.engine.state[key]), key
    assert sim.engine.bit_generator.state == ref.engine.bit_generator.state
    assert np.array_equal(ref.engine.site_totals, sim.engine.site_totals)


def test_run_marks_refuses_short_frame_arrays_and_marks_behind_the_clock_and_raises_when_frozen():
    net = lattice_network("sc", (3, 3, 3))
    sim = Simulation(RateModel(net, 1e13, 0.2), 300.0, n_ions=5, seed=0)
    with pytest.raises(ValueError, match="room for every mark"):
        sim.run_marks(np.array([1e-9, 2e-9]), np.zeros((1, 5, 3)), 100)
    sim.run(50)
    for bad in ([sim.time / 2], [2 * sim.time, 2 * sim.time], [3 * sim.time, 2 * sim.time]):
        with pytest.raises(ValueError, match="must increase, from the current clock on"):
            sim.run_marks(np.array(bad), np.zeros((len(bad), 5, 3)), 100)
    full = Simulation(RateModel(net, 1e13, 0.2), 300.0, n_ions=27, seed=0)
    with pytest.raises(NoEventsError, match="no hop can happen"):
        full.run_marks(np.array([1e-9]), np.zeros((1, 27, 3)), 100)


def test_pickle_keeps_static_flag_and_rng_state():
    net = lattice_network("square", (6, 6, 1))
    sim = Simulation(RateModel(net, 1e13, 0.1), 300.0, n_ions=10, seed=1)
    sim.run(10)
    clone = pickle.loads(pickle.dumps(sim))
    assert clone.engine.static and clone.engine.bit_generator.state == sim.engine.bit_generator.state


def test_frozen_system_raises_no_events_error():
    net = lattice_network("sc", (3, 3, 3))
    full = Simulation(RateModel(net, 1e13, 0.2), 300.0, n_ions=27, seed=0)
    with pytest.raises(NoEventsError, match="no hop can happen"):
        full.run(1)
    # rates underflow to exactly zero at a huge barrier
    cold = Simulation(RateModel(net, 1e13, 50.0), 1.0, n_ions=5, seed=0)
    with pytest.raises(NoEventsError):
        cold.run(1)


def test_time_and_hops_advance_only_by_hops():
    net = lattice_network("sc", (4, 4, 4))
    sim = Simulation(RateModel(net, 1e13, 0.2), 600.0, n_ions=10, seed=2)
    sim.run(100)
    assert sim.total_hops == 100 and sim.engine.state["hops"].sum() == 100
    now = float(sim.engine.state["clock"][0])
    assert sim.run(50, t_stop=now) == 0 and sim.engine.state["clock"][0] == now
    assert sim.run(10**9, t_stop=now + 1e-9) < 10**9  # stops on the clock, not the hop budget


def knockoff_model(**kw):
    """bcc with the cube corners as lattice sites (L) and the body centres as interstitials (I):
    an interstitial pushes a corner ion along <111> onto the next body centre."""
    net = lattice_network("bcc", (3, 3, 3), site_labels=["L", "I"], hop_cutoff_A=0.87, **kw)
    net = net.with_interstitialcy(["I"], ["L"], max_angle_deg=5.0)
    barriers = {name: (0.15 if name.startswith("knockoff") else 0.35)
                for name in net.event_class_names}
    return RateModel(net, 1e13, [barriers[n] for n in net.event_class_names],
                     site_energy_eV=[0.0, 0.3], **kw.get("model", {}))


def test_knockoff_events_move_two_ions_and_match_reference():
    model = knockoff_model()
    net = model.network
    assert any(n.startswith("knockoff:I-L-I") for n in net.event_class_names)
    assert len(net.knockoffs) == 8 * 1  # 8 <111> pushes from each body centre
    occ = np.zeros(net.n_sites, np.int8)
    occ[net.site_class == 0] = ION                     # corners full
    occ[np.flatnonzero(net.site_class == 1)[:3]] = ION  # three interstitials
    sim = Simulation(model, 900.0, occupancy=occ, seed=4)
    st_ = sim.engine.state
    pushes = 0
    for _ in range(400):
        before = st_["disp"].copy()
        sim.run(1)
        sim.check_rates()
        moved = np.flatnonzero(np.any(st_["disp"] != before, axis=1))
        assert len(moved) in (1, 2)
        pushes += len(moved) == 2
        assert np.sum(sim.occupancy == ION) == 27 + 3
    assert pushes > 50  # the cheap knock-off dominates


def test_knockoff_detailed_balance():
    model = knockoff_model()
    net = model.network
    occ = np.zeros(net.n_sites, np.int8)
    occ[net.site_class == 0] = ION
    occ[np.flatnonzero(net.site_class == 1)[:2]] = ION
    T = 700.0
    ev = net.events()
    rates = model.reference_rates(occ, T)
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    ko = np.flatnonzero((ev["ev_mid"] >= 0) & (rates > 0))
    assert len(ko) > 0
    for e in ko:
        after = occ.copy()
        after[src[e]], after[ev["ev_dst"][e]] = 0, ION
        back = model.reference_rates(after, T)[ev["ev_rev"][e]]
        assert ev["ev_mid"][ev["ev_rev"][e]] == ev["ev_mid"][e]
        dE = model.energy(after) - model.energy(occ)
        assert rates[e] / back == pytest.approx(np.exp(-dE / (KB_EV_K * T)), rel=1e-9)


def test_placement_beats_random_sequential_jamming_on_llzo():
    """Random sequential placement jams near 52 Li per cubic-LLZO cell; 56 must still be placed
    without two Li on excluded (24d-96h, split 96h) pairs."""
    from kmc.system.frameworks import load_framework

    fw = load_framework("llzo-cubic-latticegas")      # 2.0 Å exclusion: 24d-96h and split 96h pairs
    net = SiteNetwork.from_sites(fw.structure.lattice.matrix, fw.mobile_frac, fw.mobile_labels,
                                 fw.mobile_occupancy, "Li", (1, 1, 1), fw.hop_cutoff_A,
                                 fw.exclusion_distance_A)
    model = RateModel(net, 1e13, 0.3)
    for seed in range(3):
        sim = Simulation(model, 600.0, n_ions=56, seed=seed)
        occ = sim.occupancy
        off, nbr, _ = net.csr(net.exclusions)
        assert np.sum(occ == ION) == 56
        for s in np.flatnonzero(occ == ION):
            assert np.all(occ[nbr[off[s]:off[s + 1]]] == 0)
    with pytest.raises(Exception, match="could be placed"):
        Simulation(model, 600.0, n_ions=64, seed=0)  # above close packing (60 per cell)


# --- the marking rule: after a hop only the totals that can change are re-summed -------------

def _marking_cases():
    """Models that exercise every branch of the engine's marking rule (``_touch``)."""
    sc = lattice_network("sc", (6, 6, 6), interaction_cutoff_A=1.5)
    yield "interacting, two shells, field", RateModel(
        sc, 1e13, 0.2, mobile_mobile=[(1.01, 0.05), (1.5, -0.02)],
        field_V_per_A=(0.03, 0.0, 0.0)), dict(n_ions=108)
    yield "single vacancy, interacting", RateModel(
        sc, 1e13, 0.2, mobile_mobile=[(1.01, 0.05), (1.5, -0.02)]), dict(n_ions=215)
    plain = lattice_network("sc", (6, 6, 6))
    yield "dilute, constant rates, field", RateModel(
        plain, 1e13, 0.2, field_V_per_A=(0.05, 0.0, 0.0)), dict(n_ions=6)
    fcc = lattice_network("fcc", (3, 3, 3), exclusion_distance_A=0.75,
                          interaction_cutoff_A=1.01)
    blocked = np.zeros(fcc.n_sites, bool)
    blocked[np.random.default_rng(0).choice(fcc.n_sites, 6, replace=False)] = True
    # exclusions with interactions: empty interaction neighbours with one occupied excluded
    # neighbour (the would-be source) stay open, those with more are closed
    yield "exclusions, blockers, interactions", RateModel(
        fcc, 1e13, 0.3, mobile_mobile=[(0.75, 0.04), (1.01, 0.03)],
        mobile_blocker=[(1.01, -0.05)]), dict(n_ions=14, blocked=blocked)
    # exclusions with interactions and class energies, read from the rate table: garnet sites
    # (24d/96h, 2.0 A exclusions) with three Li-Li shells
    from kmc.system.frameworks import load_framework
    fw = load_framework("llzo-cubic-latticegas")
    garnet = SiteNetwork.from_sites(fw.structure.lattice.matrix, fw.mobile_frac, fw.mobile_labels,
                                    fw.mobile_occupancy, "Li", (1, 1, 1), fw.hop_cutoff_A,
                                    fw.exclusion_distance_A, interaction_cutoff_A=4.0)
    yield "exclusions, interactions, rate table", RateModel(
        garnet, 1e13, [0.25, 0.35], site_energy_eV=[0.0, 0.12],
        mobile_mobile=[(2.5, 0.10), (3.0, 0.05), (4.0, -0.02)]), dict(n_ions=52)
    ko = knockoff_model().network
    barriers = [0.15 if n.startswith("knockoff") else 0.35 for n in ko.event_class_names]
    occ = np.zeros(ko.n_sites, np.int8)
    occ[ko.site_class == 0] = ION
    occ[np.flatnonzero(ko.site_class == 1)[:4]] = ION
    yield "knock-offs", RateModel(ko, 1e13, barriers, site_energy_eV=[0.0, 0.3]), \
        dict(occupancy=occ)


@pytest.mark.parametrize("name", [c[0] for c in _marking_cases()])
def test_marking_rule_keeps_every_total_exact(name):
    """After every hop the engine's incremental totals equal the numpy reference (check_rates)
    and, bit for bit, the totals of an engine rebuilt from the occupancy: no site whose total
    changed was left unmarked, on interacting, dilute, field-driven, excluded and knock-off
    models."""
    model, kw = next((m, k) for n, m, k in _marking_cases() if n == name)
    sim = Simulation(model, 700.0, seed=3, **kw)
    if name == "exclusions, interactions, rate table":
        assert sim.engine.has_ex and sim.engine.rate_table_entries > 0   # the path it tests
    for i in range(250):
        sim.run(1)
        sim.check_rates()
        if i % 25 == 0:
            fresh = pickle.loads(pickle.dumps(sim.engine))  # rebuilt from occ
            assert np.array_equal(fresh.site_totals, sim.engine.site_totals)


@pytest.mark.parametrize("J", [0.0, 0.05])
def test_an_isolated_ion_re_sums_only_its_two_sites(J):
    """One ion alone (no other ion within reach): a hop changes the totals of its source (now
    empty) and destination only; every other site in reach is empty and keeps total 0."""
    net = lattice_network("sc", (6, 6, 6), interaction_cutoff_A=1.01 if J else 0.0)
    model = RateModel(net, 1e13, 0.2, mobile_mobile=[(1.01, J)] if J else [])
    occ = np.zeros(net.n_sites, np.int8)
    occ[0] = ION
    sim = Simulation(model, 600.0, occupancy=occ, seed=1)
    sim.engine.reset_work()
    sim.run(100)
    assert sim.engine.work["resums"] == 2 * 100


def test_single_vacancy_re_sums_the_twelve_changed_totals():
    """Single vacancy on simple cubic: the ions next to the vacancy's old site lose their one
    allowed hop, those next to its new site gain one, and the hop's two sites swap roles:
    6 + 6 totals change per hop (no two neighbours of adjacent sites coincide on sc)."""
    net = lattice_network("sc", (6, 6, 6))
    sim = Simulation(RateModel(net, 1e13, 0.2), 600.0, n_ions=net.n_sites - 1, seed=2)
    sim.engine.reset_work()
    sim.run(100)
    assert sim.engine.work["resums"] == 12 * 100
