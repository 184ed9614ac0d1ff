"""Property tests (hypothesis) over random small systems and random configs.

* engine invariants on random networks (random points in a periodic cell, teaching lattices with
  random supercells, knock-off networks), random models (site energies, barriers that may
  underflow, pair interactions, blocker interactions, fields), blockers, exclusions and
  occupancies: no double occupancy, exclusions respected, blockers fixed, ion count and identity
  conserved, time strictly increasing, every ion's displacement equal to its change of site (modulo
  the supercell), incremental rates equal to a full recompute;
* detailed balance of the engine's own rates in every configuration of tiny closed systems, and
  long-run site occupations that match the Boltzmann weights of the exact enumeration;
* the command line never raises or prints a traceback for any generated config (valid or not).

Hypothesis runs derandomized (fixed examples, see conftest.py) with bounded example counts.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import math

import numpy as np
import pytest
from conftest import lattice_network
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice

from kmc.constants import KB_EV_K
from kmc.engine.model import BLOCKER, EMPTY, ION, RateModel
from kmc.engine.simulation import CLOCK_LIMIT_S, Simulation
from kmc.exceptions import ConfigError, NoEventsError, StructureError
from kmc.system.network import SiteNetwork

FUZZ = settings(deadline=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


# ------------------------------------------------------------------------------ strategies
@st.composite
def point_networks(draw, n_min: int = 1, n_max: int = 4, supercell=None,
                   own_classes: bool = False) -> SiteNetwork:
    """n_min..n_max random sites in a random orthorhombic cell, random classes (or one class per
    site) and random hop, exclusion and interaction cutoffs."""
    n = draw(st.integers(n_min, n_max))
    abc = [draw(st.floats(2.5, 4.5)) for _ in range(3)]
    frac = np.array([[draw(st.floats(0.0, 0.999)) for _ in range(3)] for _ in range(n)])
    labels = [f"s{i}" if own_classes else f"c{draw(st.integers(0, 2))}" for i in range(n)]
    if supercell is None:
        supercell = tuple(draw(st.integers(1, 3)) for _ in range(3))
    hop = draw(st.floats(1.0, 4.0))
    excl = draw(st.sampled_from([0.0, 0.0, 0.8, 1.3]))
    inter = draw(st.sampled_from([0.0, 2.0, 3.0]))
    lattice = Lattice.orthorhombic(*abc).matrix
    d = frac[:, None, :] - frac[None, :, :]
    d -= np.round(d)
    dist = np.linalg.norm(d @ lattice, axis=2) + np.eye(n) * 99
    assume(dist.min() > 0.5)                      # no two sites on top of each other
    try:
        return SiteNetwork.from_sites(lattice, frac, labels, None, "Li", supercell, hop, excl,
                                      inter)
    except StructureError:                        # no hop within the cutoff, self images, ...
        assume(False)


@st.composite
def teaching_networks(draw) -> SiteNetwork:
    name = draw(st.sampled_from(["chain", "square", "triangular", "honeycomb", "sc", "bcc",
                                 "fcc", "diamond", "bcc-knockoff"]))
    if name == "bcc-knockoff":                    # interstitial I pushes a corner ion L along <111>
        net = lattice_network("bcc", (3, 3, 3), site_labels=["L", "I"], hop_cutoff_A=0.87)
        return net.with_interstitialcy(["I"], ["L"], max_angle_deg=5.0)
    if name == "chain":
        sc = (draw(st.integers(4, 10)), 1, 1)
    elif name in ("square", "triangular", "honeycomb"):
        sc = (draw(st.integers(3, 5)), draw(st.integers(3, 5)), 1)
    else:
        sc = tuple(draw(st.integers(2, 3)) for _ in range(3))
    from kmc.system.lattices import teaching_lattice

    nn = teaching_lattice(name, 1.0).nn_distance_A
    kw = {"interaction_cutoff_A": draw(st.sampled_from([0.0, 1.01 * nn]))}
    if draw(st.booleans()):
        kw["exclusion_distance_A"] = 1.01 * nn     # nearest neighbours exclude each other
        kw["hop_cutoff_A"] = 1.5 * nn               # ...so hops must reach further
    try:
        return lattice_network(name, sc, **kw)
    except StructureError:
        assume(False)


@st.composite
def models(draw, net: SiteNetwork, field: bool = True, underflow: bool = True,
           barrier_max: float = 0.5) -> RateModel:
    """Random site energies, barriers per event class (with ``underflow``, sometimes 60 eV: that
    class never hops), pair and blocker interactions, and (with ``field``) a small field."""
    n_ev = len(net.event_class_names)
    barrier = st.floats(0.0, barrier_max)
    if underflow:
        barrier = st.one_of(barrier, st.just(60.0))
    kw = {"site_energy_eV": [draw(st.floats(-0.15, 0.15)) for _ in net.class_names]}
    if len(net.shell_lengths):
        r = float(net.shell_lengths.max()) + 1e-3
        kw["mobile_mobile"] = [(r, draw(st.floats(-0.08, 0.08)))]
        kw["mobile_blocker"] = [(r, draw(st.floats(-0.08, 0.08)))]
    if field:
        kw["field_V_per_A"] = draw(st.sampled_from([(0.0, 0.0, 0.0), (0.01, 0.0, 0.0),
                                                    (0.0, -0.02, 0.01)]))
    return RateModel(net, draw(st.sampled_from([1e12, 1e13])),
                     [draw(barrier) for _ in range(n_ev)], **kw)


# ------------------------------------------------------------------------------ invariants
def check_state(sim: Simulation, n_ions: int, blocked: np.ndarray) -> None:
    """Occupancy, ion bookkeeping, blockers and exclusions of the current state."""
    st_ = sim.engine.state
    occ, ion_at, ion_site = st_["occ"], st_["ion_at"], st_["ion_site"]
    net = sim.model.network
    assert np.sum(occ == ION) == n_ions                              # ion count conserved
    assert len(np.unique(ion_site)) == n_ions                       # no double occupancy
    assert np.all(occ[ion_site] == ION)
    assert np.array_equal(ion_at[ion_site], np.arange(n_ions))      # identity: ids 0..n-1 kept
    assert np.all(ion_at[occ != ION] == -1)
    assert np.array_equal(occ == BLOCKER, blocked)                  # blockers never move
    if len(net.exclusions):
        src, dst = net._tile(net.exclusions)
        both = (occ[src] != EMPTY) & (occ[dst] != EMPTY)
        assert not np.any(both & ((occ[src] == ION) | (occ[dst] == ION)))  # exclusions kept


def check_displacements(net: SiteNetwork, site0: np.ndarray, site1: np.ndarray,
                        ddisp: np.ndarray, max_len: float) -> None:
    """Each ion's displacement over a chunk is its change of site plus a supercell vector, and no
    longer than the chunk's hops could carry it."""
    pos = net.positions
    frac = (ddisp - (pos[site1] - pos[site0])) @ np.linalg.inv(net.lattice)
    assert np.allclose(frac, np.round(frac), atol=1e-6)
    assert np.all(np.linalg.norm(ddisp, axis=1) <= max_len + 1e-9)


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_engine_invariants_on_random_systems(data):
    draw = data.draw
    net = draw(st.one_of(point_networks(), teaching_networks()), label="network")
    model = draw(models(net), label="model")
    n = net.n_sites
    blocked = np.zeros(n, bool)
    if draw(st.booleans()):
        blocked[draw(st.lists(st.integers(0, n - 1), max_size=max(1, n // 5), unique=True))] = True
    free = int(n - blocked.sum())
    assume(free >= 1)
    n_ions = draw(st.integers(1, free))
    try:
        sim = Simulation(model, draw(st.floats(150.0, 2000.0)), n_ions=n_ions, blocked=blocked,
                         seed=draw(st.integers(0, 2**32)))
    except ConfigError:                           # too many ions for the exclusions
        assume(False)
    st_ = sim.engine.state
    event(f"{len(net.class_names)} site classes, {'knock-offs' if net.knockoffs else 'hops'}, "
          f"{'exclusions' if len(net.exclusions) else 'no exclusions'}, "
          f"{'interacting' if model.interacting else 'non-interacting'}")
    check_state(sim, n_ions, blocked)
    hop_len = np.linalg.norm(np.vstack([net.templates.vec1, net.templates.vec2]), axis=1).max()
    for k in draw(st.lists(st.sampled_from([1, 1, 2, 7, 50, 300]), min_size=3, max_size=8),
                  label="chunks"):
        site0, disp0 = st_["ion_site"].copy(), st_["disp"].copy()
        clock0, hops0, events0 = float(st_["clock"][0]), int(st_["hops"].sum()), sim.total_hops
        try:
            done = sim.run(k)
        except NoEventsError:
            # frozen for real: nothing allowed, every allowed rate underflows to zero, or the total
            # is so small (a subnormal 5e-312 Hz was met) that the next hop lies beyond the clock
            # limit: an exponential wait with R * limit < 50 passes it with probability > e^-50
            rates = model.reference_rates(sim.occupancy, sim.temperature_K)
            assert rates.sum() * CLOCK_LIMIT_S < 50
            check_state(sim, n_ions, blocked)
            event("frozen")
            break
        assert done == k and sim.total_hops == events0 + k
        assert float(st_["clock"][0]) > clock0                      # time strictly increases
        moves = int(st_["hops"].sum()) - hops0
        assert k <= moves <= 2 * k                                  # a knock-off moves two ions
        check_state(sim, n_ions, blocked)
        check_displacements(net, site0, st_["ion_site"], st_["disp"] - disp0, k * hop_len)
        sim.check_rates()                                           # incremental == full recompute


def test_time_strictly_increases_hop_by_hop():
    """One hop at a time on an interacting system: the clock moves forward at every hop."""
    net = lattice_network("bcc", (3, 3, 3), interaction_cutoff_A=1.01)
    sim = Simulation(RateModel(net, 1e13, 0.2, mobile_mobile=[(1.01, 0.04)]), 500.0, n_ions=20,
                     seed=1)
    t = [float(sim.engine.state["clock"][0])]
    for _ in range(500):
        sim.run(1)
        t.append(float(sim.engine.state["clock"][0]))
    assert np.all(np.diff(t) > 0)


# ------------------------------------------------------------------------------ detailed balance
@st.composite
def tiny_systems(draw):
    """2..4 sites (each its own class) in one periodic cell, 1..2 ions, a model without field
    and with barriers of at most 0.2 eV (so a long run visits every configuration often)."""
    net = draw(point_networks(n_min=2, n_max=4, supercell=(1, 1, 1), own_classes=True))
    model = draw(models(net, field=False, underflow=False, barrier_max=0.2))
    n_ions = draw(st.integers(1, min(2, net.n_sites - 1)))
    return net, model, n_ions


def valid_configs(net: SiteNetwork, n_ions: int) -> list[np.ndarray]:
    """Every occupancy with ``n_ions`` ions and no two on excluded sites."""
    out = []
    src, dst = net._tile(net.exclusions) if len(net.exclusions) else (np.zeros(0, int),) * 2
    for ions in itertools.combinations(range(net.n_sites), n_ions):
        occ = np.zeros(net.n_sites, np.int8)
        occ[list(ions)] = ION
        if not np.any((occ[src] == ION) & (occ[dst] == ION)):
            out.append(occ)
    return out


@settings(FUZZ, max_examples=60)
@given(system=tiny_systems(), T=st.floats(250.0, 1500.0))
def test_engine_rates_obey_detailed_balance_in_every_configuration(system, T):
    """Gamma(a->b) / Gamma(b->a) = exp(-(E_b - E_a)/kT) for every event of every configuration,
    with the rates the engine itself computes (and an event is possible iff its reverse is); each
    rate is nu0 exp(-max(E_KRA + dE/2, dE, 0)/kT) with dE from the energies of the two whole
    configurations (every periodic image counted)."""
    net, model, n_ions = system
    configs = valid_configs(net, n_ions)
    assume(configs)
    assert_rates_follow_energies(model, T, configs)


def assert_rates_follow_energies(model: RateModel, T: float, configs: list[np.ndarray]) -> int:
    """Check the engine's rates in ``configs`` (closed under allowed events) against the energies
    of whole configurations; returns the number of events checked."""
    net = model.network
    ev = net.events()
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    klass = net.templates.klass[ev["ev_tmpl"]]
    assert configs
    rates = {occ.tobytes(): Simulation(model, T, occupancy=occ).engine.rates for occ in configs}
    checked = 0
    for occ in configs:
        r = rates[occ.tobytes()]
        for e in np.flatnonzero(model.allowed(occ)):
            after = occ.copy()
            after[src[e]], after[ev["ev_dst"][e]] = EMPTY, ION
            back = rates[after.tobytes()][ev["ev_rev"][e]]
            assert model.allowed(after)[ev["ev_rev"][e]]
            dE = model.energy(after) - model.energy(occ)
            assert r[e] > 0 and back > 0
            assert r[e] / back == pytest.approx(math.exp(-dE / (KB_EV_K * T)), rel=1e-9)
            ea = max(model.kra_class[klass[e]] + 0.5 * dE, dE, 0.0)
            assert r[e] == pytest.approx(model.nu_class[klass[e]] * math.exp(-ea / (KB_EV_K * T)),
                                         rel=1e-9)
            checked += 1
        assert np.all(r[~model.allowed(occ)] == 0.0)
    return checked


def test_small_supercells_count_every_periodic_image():
    """In a 2-wide supercell both x neighbours of a site are the same site: the leaving ion's
    interaction with the destination counts twice, and so does its exclusion (regression: the
    rates used one image only, shifting every barrier by J/2 and freezing excluded hops)."""
    net = lattice_network("sc", (2, 2, 2), interaction_cutoff_A=1.01)
    model = RateModel(net, 1e13, 0.1, mobile_mobile=[(1.01, 0.08)])
    assert assert_rates_follow_energies(model, 700.0, valid_configs(net, 3)) > 50
    excl = lattice_network("sc", (2, 2, 2), exclusion_distance_A=1.01)
    lone = Simulation(RateModel(excl, 1e13, 0.2), 600.0, n_ions=1, seed=0)
    assert lone.run(10) == 10                     # a lone ion is never blocked by itself


def reachable(net: SiteNetwork, model: RateModel, start: np.ndarray) -> list[np.ndarray]:
    """Configurations reachable from ``start`` by allowed events (the ergodic component)."""
    ev = net.events()
    src = np.repeat(np.arange(net.n_sites), np.diff(ev["out_off"]))
    seen, todo = {start.tobytes(): start}, [start]
    while todo:
        occ = todo.pop()
        for e in np.flatnonzero(model.allowed(occ)):
            nxt = occ.copy()
            nxt[src[e]], nxt[ev["ev_dst"][e]] = EMPTY, ION
            if nxt.tobytes() not in seen:
                seen[nxt.tobytes()] = nxt
                todo.append(nxt)
    return list(seen.values())


@settings(FUZZ, max_examples=20)
@given(system=tiny_systems(), T=st.floats(500.0, 1200.0), seed=st.integers(0, 2**16))
def test_long_run_site_occupations_match_boltzmann(system, T, seed):
    """Time-averaged occupation of every site (each site is its own class) over a long run equals
    the Boltzmann average over the configurations the start can reach."""
    net, model, n_ions = system
    sim = Simulation(model, T, n_ions=n_ions, seed=seed)
    comp = reachable(net, model, sim.occupancy.copy())
    assume(len(comp) >= 2)
    E = np.array([model.energy(c) for c in comp])
    w = np.exp(-(E - E.min()) / (KB_EV_K * T))
    exact = (w[:, None] * (np.array(comp) == ION)).sum(axis=0) / w.sum()
    sim.run(2000)
    batches = []
    for _ in range(20):
        sim.reset_measurement()
        sim.run(5000)
        batches.append(sim.class_occupation())   # one class per site: ions per site
    batches = np.array(batches)
    mean = batches.mean(axis=0)
    se = batches.std(axis=0, ddof=1) / math.sqrt(len(batches))
    assert np.all(np.abs(mean - exact) <= 5 * se + 2e-3), (mean, exact, se)


# ------------------------------------------------------------------------------ CLI fuzz
BASE = {
    "lattice": {"builtin": "sc", "supercell": [3, 3, 3]},
    "occupancy": {"filling": 0.5},
    "model": {"attempt_frequency_THz": 10.0, "barrier_eV": 0.25},
    "run": {"temperatures_K": [500.0], "hops_per_ion": 4, "equilibration_hops_per_ion": 1,
            "replicas": 2, "seed": 1},
}
JUNK = st.one_of(
    st.integers(-2, 5),
    st.sampled_from([0.0, -1.0, 0.5, 1.5, 300.0, 1e300, 1e-300, math.nan, math.inf, -math.inf]),
    st.text(alphabet="abcxyz_ .\"\\é", max_size=6),
    st.booleans(),
    st.lists(st.integers(-1, 4), max_size=4),
    st.just([]),
    st.just({"x": 1}),
    st.sampled_from([2**63, 10**20, -(2**63)]),
    st.lists(st.lists(st.sampled_from([1.01, 2.0, 1e300, math.nan, -1.0, 0.05]), min_size=2,
                      max_size=2), max_size=2),                  # interaction-shell shaped
    st.just({"mobile_mobile": [[1.01, 1e300]]}),
    st.just({"default": 0.1, "site": math.inf}),
)
KEYS = ["builtin", "supercell", "lattice_constant_A", "hop_cutoff_A", "exclusion_distance_A",
        "interaction_cutoff_A", "site_labels", "mobile", "cif", "vacancies", "ions", "filling",
        "attempt_frequency_THz", "barrier_eV", "site_energies_eV", "interactions_eV",
        "field_V_per_A", "charge_e", "temperatures_K", "hops_per_ion", "replicas", "seed",
        "time_origins", "msd_points", "target_rel_err", "max_hops_per_ion", "converge_on",
        "arrhenius_basis", "check_rates", "suprecell", "temprature"]


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)                      # JSON escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}"
                                for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(config: dict) -> str:
    lines = []
    for section, table in config.items():
        if not isinstance(table, dict):
            lines.insert(0, f"{json.dumps(section)} = {toml_value(table)}")
            continue
        lines.append(f"[{json.dumps(section)}]")
        lines.extend(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


@st.composite
def configs(draw) -> dict:
    """The small valid BASE with 0..3 random edits: set a (possibly misspelled) key of any section
    to a junk value, delete a key or a section, swap the lattice."""
    cfg = json.loads(json.dumps(BASE))
    if draw(st.booleans()):
        cfg["lattice"]["builtin"] = draw(st.sampled_from(["bcc", "fcc", "square", "chain",
                                                          "honeycomb", "llzo-cubic"]))
        if cfg["lattice"]["builtin"] == "llzo-cubic":
            cfg["lattice"]["supercell"] = [1, 1, 1]
            cfg.pop("occupancy")
            cfg.pop("model")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "set", "set", "delete", "drop section"]))
        section = draw(st.sampled_from(["lattice", "occupancy", "model", "run", "dopants",
                                        "runn"]))
        if op == "drop section":
            cfg.pop(section, None)
        elif op == "delete" and cfg.get(section):
            cfg[section].pop(draw(st.sampled_from(sorted(cfg[section]))))
        elif op == "set":
            table = cfg.setdefault(section, {})
            if isinstance(table, dict):
                table[draw(st.sampled_from(KEYS))] = draw(JUNK)
    return cfg


@settings(FUZZ, max_examples=80)
@given(config=configs())
def test_cli_never_prints_a_traceback(tmp_path_factory, config):
    from kmc.cli.main import main

    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    for argv in (["run", str(path), "--json", "--quiet"], ["info", str(path), "--json"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)                     # any exception here fails the test
        assert code in (0, 2), (argv, code, err.getvalue())
        event(f"{argv[0]}: exit {code}")
        assert "Traceback" not in err.getvalue()
        if code == 2:
            lines = err.getvalue().splitlines()
            assert len(lines) == 1 and lines[0].startswith("kmc: error: "), err.getvalue()
            assert out.getvalue() == ""
        else:
            json.loads(out.getvalue())            # exactly one JSON object


def test_cli_fuzz_covers_both_outcomes(tmp_path, capsys):
    """The generator's base is valid and one edit can break it (so the fuzz explores both)."""
    from kmc.cli.main import main

    path = tmp_path / "c.toml"
    path.write_text(to_toml(BASE))
    assert main(["run", str(path), "--json", "--quiet"]) == 0
    broken = json.loads(json.dumps(BASE))
    broken["run"]["temprature"] = math.nan
    path.write_text(to_toml(broken))
    assert main(["run", str(path), "--json", "--quiet"]) == 2
    assert "did you mean 'temperatures_K'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ hostile files
def _quiet_main(argv):
    from kmc.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)                         # any exception here fails the test
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code, out.getvalue(), err.getvalue()


@settings(FUZZ, max_examples=25)
@given(config=configs())
def test_run_with_out_succeeds_or_leaves_nothing(tmp_path_factory, config):
    """`kmc run --out DIR` on a mutated config: success with results, or one sentence, exit 2
    and no DIR at all."""
    d = tmp_path_factory.mktemp("fuzz-out")
    path = d / "c.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    out = d / "out"
    code, _, err = _quiet_main(["run", str(path), "--out", str(out), "--quiet"])
    assert code in (0, 2), err
    if code == 2:
        assert len(err.splitlines()) == 1 and err.startswith("kmc: error: ")
        assert not out.exists()
    else:
        assert (out / "result.json").is_file() and not (out / "run.ckpt").exists()


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """A real mid-run checkpoint of BASE (framed file bytes) and the BASE config path."""
    import kmc.runs.runner as runner
    from kmc.config import Config
    from kmc.config.keys import run_key
    from kmc.runs.checkpoint import CheckpointFile

    d = tmp_path_factory.mktemp("ckpt")
    path = d / "c.toml"
    path.write_text(to_toml(BASE))
    config = Config.from_file(path)
    blobs = []

    class Keep:
        interval_s = 0.0

        def load(self):
            return None

        def save(self, blob):
            blobs.append(blob)
    runner.run_config(config, checkpoint=Keep())
    f = CheckpointFile(d / "x.ckpt", run_key(config.to_dict()))
    f.save(blobs[len(blobs) // 2])
    return path, f.path.read_bytes()


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_corrupted_run_checkpoint_is_refused_or_ignored(tmp_path_factory, saved_checkpoint, data):
    """Truncated, bit-flipped or spliced run.ckpt: resume, a fresh run with a note, or one
    sentence naming --fresh (the file kept); never a traceback or a partial result."""
    cfg, good = saved_checkpoint
    op = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    b = bytearray(good)
    i = data.draw(st.integers(0, len(b) - 1))
    if op == "truncate":
        b = b[:i]
    elif op == "flip":
        b[i] ^= data.draw(st.integers(1, 255))
    else:
        b[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    out = tmp_path_factory.mktemp("fuzz-ckpt")
    (out / "run.ckpt").write_bytes(bytes(b))
    code, _, err = _quiet_main(["run", str(cfg), "--out", str(out), "--quiet"])
    event(f"{op}: exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert "--fresh" in err and (out / "run.ckpt").read_bytes() == bytes(b)
        assert not (out / "result.json").exists()
    else:
        assert (out / "result.json").is_file() and not (out / "run.ckpt").exists()


@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory):
    """A finished two-point campaign of BASE: (campaign file, store bytes, summary text)."""
    d = tmp_path_factory.mktemp("camp")
    (d / "base.toml").write_text(to_toml(BASE))
    spec = d / "camp.toml"
    spec.write_text('base = "base.toml"\n[grid]\n"run.seed" = [1, 2]\n')
    code, _, err = _quiet_main(["campaign", str(spec), "--out", str(d / "out"), "--workers", "1",
                                "--quiet"])
    assert code == 0, err
    return spec, (d / "out" / "store.sqlite").read_bytes(), _summary(d / "out")


def _summary(out) -> list:
    import pandas as pd

    df = pd.read_csv(out / "summary.csv")
    return df[["point", "status", "D_tracer_cm2_s"]].values.tolist()


@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_corrupted_store_never_serves_wrong_data(tmp_path_factory, finished_campaign, data):
    """Flipped bytes in store.sqlite: the campaign refuses with one sentence, or recomputes
    what it cannot trust; a summary it writes always holds the true numbers."""
    spec, good, summary = finished_campaign
    b = bytearray(good)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= data.draw(st.integers(1, 255))
    out = tmp_path_factory.mktemp("fuzz-store")
    (out / "store.sqlite").write_bytes(bytes(b))
    code, _, err = _quiet_main(["campaign", str(spec), "--out", str(out), "--workers", "1",
                                "--quiet"])
    event(f"exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert len(err.splitlines()) == 1 and err.startswith("kmc: error: ")
    else:
        assert _summary(out) == summary
