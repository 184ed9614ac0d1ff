"""Issue 3: time origins, convergence control, the field route, the Arrhenius object of
`kmc run`, result files (CSV, JSON, figures) and RunResult.to_dataframe."""
import csv
import json
import sys

import numpy as np
import pytest

import kmc
from kmc.analysis.transport import ReplicaSample, analyze_frames, block_sums, replica_values
from kmc.cli.main import _convergence_lines as render_convergence
from kmc.cli.main import main
from kmc.config import Config
from kmc.constants import A3_TO_CM3, E_CHARGE_C, KB_J_K
from kmc.exceptions import ConfigError
from kmc.runs.replicas import ReplicaMeasurement, fresh_seeds, replica_seeds, run_replica
from kmc.runs.results import RunResult, flatten
from kmc.runs.runner import run_config
from kmc.runs.system import build_system

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

BASE = """
[lattice]
builtin = "sc"
supercell = [5, 5, 5]

[occupancy]
ions = 6

[model]
attempt_frequency_THz = 10.0
barrier_eV = 0.25

[run]
temperatures_K = [400.0, 500.0, 650.0]
hops_per_ion = 20
equilibration_hops_per_ion = 2
replicas = 4
seed = 7
msd_points = 5
"""

#: BASE run long enough that every temperature is diffusive: Arrhenius fits use only those
LONG = BASE.replace("hops_per_ion = 20\n", "hops_per_ion = 200\n")
assert LONG != BASE

ARRHENIUS_KEYS = {"Ea_eV", "Ea_err_eV", "Ea_ci_eV", "prefactor_cm2_s", "prefactor_err_cm2_s",
                  "sigma_300K_S_cm", "sigma_300K_ci_S_cm", "reduced_chi2", "basis",
                  "non_arrhenius", "non_arrhenius_detail", "level", "covariance", "fits",
                  "extrapolated_to_300K", "Ea_bootstrap_err_eV"}
RUN_KEYS = {"time_origins", "block_hops_per_ion", "hops_per_ion_used", "converged", "stop_reason",
            "rel_err_D_tracer", "rel_err_D_jump", "convergence_rounds"}


def cfg(text=BASE, **run) -> Config:
    c = Config.from_toml(text)
    d = c.to_dict()
    d["run"].update(run)
    return Config.from_dict(d)


def cli_json(tmp_path, capsys, text, *extra):
    path = tmp_path / "c.toml"
    path.write_text(text)
    code = main(["run", str(path), "--json", *extra])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize("line,needle", [
    ("target_rel_err = 0.0", "strictly between 0 and 1"),
    ("target_rel_err = 1.5", "strictly between 0 and 1"),
    ("target_rel_err = nan", "finite"),
    ("target_rel_err = '0.05'", "must be a number"),
    ("target_rel_error = 0.05", "did you mean 'target_rel_err'"),
    ("max_hops_per_ion = 100", "only acts together with target_rel_err"),
    ("converge_on = ['D_jump']", "only acts together with target_rel_err"),
    ("fresh_final_round = true", "only acts together with target_rel_err"),
    ("target_rel_err = 0.05\nfresh_final_round = 1", "must be true or false"),
    ("target_rel_err = 0.05\nmax_hops_per_ion = 10", "below hops_per_ion"),
    ("target_rel_err = 0.05\nmax_hops_per_ion = inf", "finite"),
    ("target_rel_err = 0.05\nconverge_on = ['D_trace']", "did you mean 'D_tracer'"),
    ("target_rel_err = 0.05\nconverge_on = []", "list of quantity names"),
    ("arrhenius_basis = 'sigma'", "did you mean 'sigma_T'"),
    ("arrhenius_basis = 3", "is not known"),
    ("time_origins = 0", "greater than zero"),
    ("time_origins = 2.5", "whole number"),
    ("time_origins = 50", "less than one hop per ion"),
])
def test_new_run_keys_are_validated(tmp_path, capsys, line, needle):
    code, out, err = cli_json(tmp_path, capsys, BASE.replace("[run]", f"[run]\n{line}"))
    assert code == 2, err
    assert needle in err and "Traceback" not in err and out == ""
    assert err.count("\n") == 1


def test_target_needs_two_replicas_and_round_trip():
    with pytest.raises(ConfigError, match="at least 2 replicas"):
        cfg(replicas=1, target_rel_err=0.1)
    c = cfg(target_rel_err=0.1, max_hops_per_ion=80, converge_on=["D_tracer", "D_jump"],
            arrhenius_basis="D_jump", time_origins=2)
    assert Config.from_dict(c.to_dict()) == c
    assert c.run.block_hops_per_ion == 10 and c.run.max_hops_limit == 80
    assert cfg(target_rel_err=0.1).run.max_hops_limit == 16 * 20  # default: 16 x hops_per_ion
    assert Config.from_dict(cfg().to_dict()) == cfg()


# ------------------------------------------------------------------------------ JSON / table
def test_json_has_arrhenius_object_and_run_keys(tmp_path, capsys):
    code, out, _ = cli_json(tmp_path, capsys, LONG)
    assert code == 0
    data = json.loads(out)
    arr = data["arrhenius"]
    assert ARRHENIUS_KEYS <= set(arr)
    # default basis "auto": the smaller median relative error of D* and sigma T
    assert arr["basis_requested"] == "auto" and isinstance(arr["non_arrhenius"], bool)
    med = arr["basis_median_rel_err"]
    assert arr["basis"] == min(med, key=med.get)
    assert "explanation" in arr["non_arrhenius_detail"]
    lo, hi = arr["sigma_300K_ci_S_cm"]
    assert 0 < lo < arr["sigma_300K_S_cm"] < hi
    assert arr["Ea_ci_eV"][0] < arr["Ea_eV"] < arr["Ea_ci_eV"][1]
    assert 0.1 < arr["Ea_eV"] < 0.4 and arr["Ea_err_eV"] > 0
    assert set(arr["fits"]) == {"D_tracer", "D_jump", "sigma_T"}
    assert set(data["arrhenius_axes"]) == {"xx", "yy", "zz"}
    for ax in data["arrhenius_axes"].values():
        assert {"Ea_eV", "Ea_err_eV", "prefactor_cm2_s"} <= set(ax)
    for r in data["results"]:
        assert RUN_KEYS <= set(r)
        assert r["converged"] is None and r["time_origins"] == 1
        assert "sigma_field_S_cm" not in r  # no field, no field route


def test_sigma_T_prefactor_is_the_nernst_einstein_D_J_prefactor():
    res = run_config(cfg(LONG, temperatures_K=[400.0, 600.0], arrhenius_basis="sigma_T"))
    a = res.arrhenius
    n = res.network["n_ions"] / (res.network["volume_A3"] * A3_TO_CM3)
    assert a["prefactor_cm2_s"] * n * E_CHARGE_C ** 2 / KB_J_K == pytest.approx(
        a["prefactor_K_S_cm"], rel=1e-12)
    # sigma T is proportional to D_J at fixed density: the two fits have the same Ea
    assert a["fits"]["sigma_T"]["Ea_eV"] == pytest.approx(a["fits"]["D_jump"]["Ea_eV"], rel=1e-9)


def test_basis_choice_and_fit_objects():
    res = run_config(cfg(LONG, arrhenius_basis="D_tracer"))
    assert res.arrhenius["basis"] == "D_tracer"
    fit = res.arrhenius_fit()
    assert isinstance(fit, kmc.ArrheniusFit) and fit.basis == "D_tracer"
    assert res.arrhenius["Ea_eV"] == fit.Ea_eV
    assert "sigma_T" in res.fits and res.arrhenius_fit("D_tracer_xx").basis == "D_tracer_xx"
    with pytest.raises(KeyError, match="no 'nope' Arrhenius fit"):
        res.arrhenius_fit("nope")
    # sigma at 300 K does not depend on the basis: it always comes from the sigma T fit
    other = run_config(cfg(LONG, arrhenius_basis="D_jump"))
    assert other.arrhenius["sigma_300K_S_cm"] == res.arrhenius["sigma_300K_S_cm"]


def test_one_temperature_has_no_fit_and_says_so(tmp_path, capsys):
    one = BASE.replace("[400.0, 500.0, 650.0]", "[500.0]")
    code, out, _ = cli_json(tmp_path, capsys, one)
    data = json.loads(out)
    assert data["arrhenius"] is None and data["arrhenius_axes"] is None
    assert any("at least 2 different temperatures" in n for n in data["notes"])
    (tmp_path / "c.toml").write_text(one)
    assert main(["run", str(tmp_path / "c.toml"), "--quiet"]) == 0
    assert "note: no Arrhenius fit: it needs at least 2" in capsys.readouterr().out


def test_table_reports_fit_convergence_and_field(tmp_path, capsys):
    text = BASE.replace("[run]", "[run]\ntarget_rel_err = 0.5\narrhenius_basis = 'sigma_T'").replace(
        "barrier_eV = 0.25", "barrier_eV = 0.25\nfield_V_per_A = [0.002, 0.0, 0.0]")
    (tmp_path / "c.toml").write_text(text)
    assert main(["run", str(tmp_path / "c.toml"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Arrhenius (sigma_T, 3 temperatures 400-650 K): Ea = " in out
    assert "sigma(300 K) = " in out and "extrapolated" in out
    assert "convergence (target" in out and "converged after" in out
    assert "field route" in out and "sigma_field" in out


def test_two_dimensional_network_has_no_zz_axis_fit():
    text = LONG.replace('"sc"', '"square"').replace("[5, 5, 5]", "[8, 8, 1]")
    res = run_config(cfg(text))
    assert set(res.arrhenius_axes) == {"xx", "yy"}


# ------------------------------------------------------------------------------ files
def test_out_dir_files_csv_rows_and_every_key(tmp_path, capsys):
    (tmp_path / "c.toml").write_text(LONG)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "result.json").read_text())
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    keys = set().union(*(flatten(r) for r in data["results"]))
    assert set(rows[0]) == keys  # every key of the JSON result, flattened, and nothing else
    assert "occupation_per_class.site" in keys
    for row, r in zip(rows, data["results"]):
        assert float(row["D_tracer_cm2_s"]) == r["D_tracer_cm2_s"]  # full precision
        assert float(row["temperature_K"]) == r["temperature_K"]
    with open(out / "msd.csv", newline="") as fh:
        msd_rows = list(csv.DictReader(fh))
    assert {float(r["temperature_K"]) for r in msd_rows} == {400.0, 500.0, 650.0}
    for r in data["results"]:  # the D* fit window is marked on exactly its lags
        mine = [m for m in msd_rows if float(m["temperature_K"]) == r["temperature_K"]]
        inside = [float(m["t_s"]) for m in mine if m["in_fit_D_tracer"] == "1"]
        assert len(inside) == r["fit"]["D_tracer"]["n_points"]
        assert min(inside) == r["fit"]["D_tracer"]["start_s"]
    for name in ("arrhenius.png", "msd.png", "msd_loglog.png"):
        blob = (out / name).read_bytes()
        assert blob[:8] == PNG_MAGIC and len(blob) > 10_000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    # --loglog redraws msd.png on log axes
    before = (out / "msd.png").read_bytes()
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out), "--quiet",
                 "--loglog"]) == 0
    assert (out / "msd.png").read_bytes() != before
    # a later single-temperature run into the same directory drops the stale Arrhenius figure
    (tmp_path / "one.toml").write_text(BASE.replace("[400.0, 500.0, 650.0]", "[500.0]"))
    assert main(["run", str(tmp_path / "one.toml"), "--out", str(out), "--quiet"]) == 0
    assert not (out / "arrhenius.png").exists() and (out / "msd.png").exists()
    with open(out / "results.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 1


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import kmc.runs.output
    from kmc.runs.output import write_outputs

    res = run_config(cfg(temperatures_K=[400.0, 600.0]))

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(kmc.runs.output, "plot_msd", boom)  # where write_outputs looks it up
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        write_outputs(res, out)
    assert list(out.iterdir()) == []


def test_msd_curves_start_at_origin_with_errors():
    res = run_config(cfg(time_origins=4))
    for c in res.msd:
        assert c["t_s"][0] == 0.0 and c["msd_tracer_A2"][0] == 0.0
        assert len(c["t_s"]) > 20 and np.all(np.diff(c["t_s"]) > 0)
        assert c["msd_tracer_axes_A2"].shape == (len(c["t_s"]), 3)
        assert {"D_tracer", "D_jump"} <= set(c["fit"])
        assert c["msd_tracer_err_A2"].shape == c["t_s"].shape


# ------------------------------------------------------------------------------ dataframe
def test_to_dataframe_and_missing_pandas(monkeypatch):
    res = run_config(cfg())
    df = res.to_dataframe()
    assert list(df["temperature_K"]) == [400.0, 500.0, 650.0]
    assert set(df.columns) == set(flatten(res.to_dict()["results"][0]))
    assert df["D_tracer_cm2_s"].dtype == float and "occupation_per_class.site" in df.columns
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="needs pandas.*to_rows"):
        res.to_dataframe()
    assert len(res.to_rows()) == 3


def test_flatten():
    assert flatten({"a": 1, "b": {"c": 2, "d": [3, 4]}}) == {"a": 1, "b.c": 2, "b.d.0": 3,
                                                             "b.d.1": 4}


# ------------------------------------------------------------------------------ time origins
def test_frames_are_equally_spaced_states_of_one_trajectory():
    c = cfg(time_origins=4, temperatures_K=[500.0], msd_frames=32)
    system = build_system(c)
    seed = replica_seeds(c.run.seed, 1, 1)[0][0]
    rep = run_replica(system, 500.0, seed, c.run)
    fb, s = rep.frames, rep.sample
    assert fb.n_frames == 33 and fb.capacity == 32
    assert s.time_s == pytest.approx(32 * fb.spacing_s, rel=1e-12)
    assert np.array_equal(fb.frames[0], np.zeros((6, 3)))
    np.testing.assert_array_equal(fb.frames[-1].sum(axis=0), s.block_collective[0])
    assert fb.ion_moves == s.hops  # the last frame is the end of the measurement
    v = replica_values([s], 3, system.network.volume_A3, 500.0)
    expect = s.block_r2_axis.sum() * 1e-16 / (2 * 3 * 6 * s.block_time_s.sum())
    assert v["D_tracer_cm2_s"][0] == pytest.approx(expect, rel=1e-12)
    assert v["D_jump_cm2_s"][0] == pytest.approx(
        (s.block_collective ** 2).sum() * 1e-16 / (2 * 3 * 6 * s.time_s), rel=1e-12)


def _sample(t, r2, col, n=1):
    k = len(t)
    return ReplicaSample(n, np.asarray(t, float), np.asarray(r2, float), np.asarray(col, float),
                         np.ones(k), np.ones(k, np.int64), np.ones(1))


def test_concat_weights_occupation_by_time():
    a = ReplicaSample(2, np.array([1.0]), np.ones((1, 3)), np.ones((1, 3)), np.ones(1),
                      np.array([3]), np.array([1.0, 1.0]))
    b = ReplicaSample(2, np.array([3.0]), np.ones((1, 3)), np.ones((1, 3)), np.ones(1),
                      np.array([5]), np.array([2.0, 0.0]))
    c = ReplicaSample.concat([a, b])
    assert c.n_blocks == 2 and c.hops == 8 and c.time_s == 4.0
    np.testing.assert_allclose(c.class_occupation, [1.75, 0.25])


# ------------------------------------------------------------------------------ drift removal
def test_pure_drift_is_removed_exactly():
    v = np.array([3.0, -1.0, 0.5])  # Å/s per ion, no fluctuation at all
    n = 4
    samples = []
    for t in ([1.0, 2.0], [0.5, 1.5, 1.0]):
        t = np.array(t)
        col = n * v * t[:, None]
        r2 = n * (v * t[:, None]) ** 2
        samples.append(_sample(t, r2, col, n))
    r2_b, col2_b = block_sums(samples, (0.01, 0.0, 0.0))
    for r, c in zip(r2_b, col2_b):
        np.testing.assert_allclose(r, 0.0, atol=1e-12)
        np.testing.assert_allclose(c, 0.0, atol=1e-12)
    raw = replica_values(samples, 3, 100.0, 300.0)
    assert raw["D_jump_cm2_s"].min() > 0  # without the field the drift would count as diffusion


def test_drift_removal_is_unbiased_for_random_increments():
    """Independent ions, Gaussian increments with drift: the corrected sums estimate the
    zero-field values without bias, even with few, unequal blocks."""
    rng = np.random.default_rng(1)
    n, D, v = 3, 2.0, np.array([5.0, 0.0, 0.0])
    t_blocks = np.array([0.5, 1.0, 2.0])
    dj, ds = [], []
    for _ in range(4000):
        samples = []
        for _r in range(2):
            dr = v * t_blocks[:, None, None] + rng.standard_normal((3, n, 3)) * np.sqrt(
                2 * D * t_blocks)[:, None, None]
            samples.append(_sample(t_blocks, (dr ** 2).sum(axis=1), dr.sum(axis=1), n))
        r2_b, col2_b = block_sums(samples, (1.0, 0.0, 0.0))
        T = 2 * t_blocks.sum()
        dj.append(sum(c.sum() for c in col2_b) / (2 * 3 * n * T))
        ds.append(sum(r.sum() for r in r2_b) / (2 * 3 * n * T))
    for est in (dj, ds):
        m, se = np.mean(est), np.std(est, ddof=1) / np.sqrt(len(est))
        assert abs(m - D) < 4 * se, (m, se)
    # the uncorrected subtraction would be visibly low: 1 - sum t^2 / T^2 = 0.857 here
    se_dj = np.std(dj, ddof=1) / np.sqrt(len(dj))
    shrink = 1 - 2 * np.sum(t_blocks ** 2) / T ** 2
    assert abs(np.mean(dj) * shrink - D) > 6 * se_dj


def test_field_route_keys_sign_and_charge():
    field = BASE.replace("barrier_eV = 0.25", "barrier_eV = 0.25\nfield_V_per_A = [0.0, 0.0, "
                                              "-0.003]")
    res = run_config(cfg(field, temperatures_K=[600.0], replicas=6, hops_per_ion=60))
    r = res.results[0]
    assert r["sigma_field_S_cm"] > 0 and r["sigma_field_err_S_cm"] > 0
    assert r["drift_velocity_cm_s"] > 0  # along the field for a positive ion
    assert r["field_work_max_over_kT"] == pytest.approx(0.003 / (8.617333262e-5 * 600), rel=1e-9)
    neg = field.replace("barrier_eV = 0.25", "barrier_eV = 0.25\ncharge_e = -2.0")
    r2 = run_config(cfg(neg, temperatures_K=[600.0], replicas=6, hops_per_ion=60)).results[0]
    assert r2["drift_velocity_cm_s"] < 0 and r2["sigma_field_S_cm"] > 0


# ------------------------------------------------------------------------------ convergence
def test_convergence_stops_at_target():
    res = run_config(cfg(target_rel_err=0.9, temperatures_K=[500.0]))
    r = res.results[0]
    assert r["converged"] is True
    assert r["stop_reason"] == "target_rel_err reached in the diffusive regime"
    assert r["diffusive_D_tracer"] is True  # converged means: diffusive and precise enough
    nominal = 20 * 2 ** (r["convergence_rounds"] - 1)
    assert 0.75 * nominal < r["hops_per_ion_used"] < 1.25 * nominal
    assert r["rel_err_D_tracer"] <= 0.9


def test_convergence_stops_at_max_hops_and_says_so():
    res = run_config(cfg(target_rel_err=1e-4, max_hops_per_ion=80, temperatures_K=[500.0],
                         converge_on=["D_tracer", "D_jump"]))
    r = res.results[0]
    assert r["converged"] is False and r["stop_reason"] == "max_hops_per_ion reached"
    assert 60 < r["hops_per_ion_used"] < 100
    assert r["convergence_rounds"] == 3  # 20 -> 40 -> 80 hops per ion (time doubled)
    # the buffer was decimated twice: same number of frames, four times the spacing
    assert r["time_s"] == pytest.approx(r["frame_spacing_s"] * r["msd_frames"], rel=1e-12)
    assert r["rel_err_D_tracer"] > 1e-4
    assert r["hops"] == round(r["hops_per_ion_used"] * 4 * 6)  # replicas x ions: nothing rerun


def test_convergence_lowers_the_error_and_is_reproducible():
    long_ = run_config(cfg(target_rel_err=0.03, max_hops_per_ion=5120,
                           temperatures_K=[500.0])).results[0]
    # 6 ions x 4 replicas: one block gives about 0.82 / sqrt(24) = 17 % relative error
    assert long_["converged"] is True and long_["rel_err_D_tracer"] <= 0.03
    assert 20 < long_["hops_per_ion_used"] < 5120

    def strip(result: RunResult):
        d = result.to_dict()
        for r in d["results"]:
            del r["wall_s"], r["hops_per_s"]
        return d
    a = strip(run_config(cfg(target_rel_err=0.08)))
    b = strip(run_config(cfg(target_rel_err=0.08)))
    c = strip(run_config(cfg(target_rel_err=0.08, seed=8)))
    assert a == b and a != c
    assert json.dumps(a, allow_nan=False)


def test_fresh_final_round_reports_replicas_that_took_no_part_in_the_decision():
    """The stopping rule decides on one set of replicas; with fresh_final_round the result is a
    second set (new seeds) measured for the decided time, rebuilt here by hand."""
    plain = run_config(cfg(target_rel_err=0.5, temperatures_K=[500.0])).results[0]
    config = cfg(target_rel_err=0.5, temperatures_K=[500.0], fresh_final_round=True)
    result = run_config(config)
    fresh = result.results[0]
    assert plain["converged"] is True and plain["convergence_rounds"] >= 2
    # the decision is the plain run's, to the last digit
    assert fresh["convergence_rounds"] == plain["convergence_rounds"] and fresh["converged"]
    assert fresh["final_round"] == "fresh replicas" and "final_round" not in plain
    assert fresh["pilot_rel_err_D_tracer"] == plain["rel_err_D_tracer"]
    assert fresh["pilot_D_tracer_cm2_s"] == plain["D_tracer_cm2_s"]
    assert fresh["pilot_D_jump_cm2_s"] == plain["D_jump_cm2_s"]
    # the reported numbers are the fresh seeds' alone, measured to the decided time on the
    # decided lag grid
    system = build_system(config)
    reps = [ReplicaMeasurement(system, 500.0, s, config.run)
            for s in fresh_seeds(replica_seeds(7, 1, 4)[0])]
    for rep in reps:
        rep.start(fresh["frame_spacing_s"], config.run.msd_frames)
        rep.measure_until(plain["time_s"])
    net = system.network
    an = analyze_frames([r.frames for r in reps], net.dimensionality, net.volume_A3, 500.0)
    assert fresh["time_s"] == plain["time_s"]
    assert fresh["D_tracer_cm2_s"] == an.summary["D_tracer_cm2_s"] != plain["D_tracer_cm2_s"]
    assert fresh["D_jump_cm2_s"] == an.summary["D_jump_cm2_s"]
    assert fresh["rel_err_D_tracer"] == pytest.approx(
        an.summary["D_tracer_err_cm2_s"] / an.summary["D_tracer_cm2_s"], rel=1e-12)
    # as long a measurement (reported hops are the fresh replicas'); false is the default and
    # leaves the run key alone
    assert fresh["hops"] == pytest.approx(plain["hops"], rel=0.2)
    assert cfg(target_rel_err=0.5, fresh_final_round=False).to_dict() == \
        cfg(target_rel_err=0.5).to_dict()
    # kmc run's convergence lines say where the reported errors come from
    line = render_convergence(result)[1]
    assert "converged after" in line and "from fresh replicas (the deciding ones had D* " \
        f"{fresh['pilot_rel_err_D_tracer']:.3g}" in line


def test_arrhenius_fits_leave_out_temperatures_that_are_not_diffusive():
    """A temperature whose MSD was still bending (here 5x too high, as short runs of jammed
    systems come out) must not pull the fit: it is left out, named in a note and in
    ``excluded_not_diffusive_K``; with no flags every temperature is used."""
    from kmc.analysis.report import arrhenius_report
    from kmc.constants import KB_EV_K

    rng = np.random.default_rng(3)
    T = [400.0, 500.0, 600.0, 700.0]

    def vals(t: float, factor: float) -> dict:
        d = factor * 1e-5 * np.exp(-0.3 / (KB_EV_K * t)) * (1 + 0.01 * rng.standard_normal(8))
        return {"D_tracer_cm2_s": d, "D_jump_cm2_s": d, "sigma_S_cm": d * 1e3 / t,
                **{f"D_tracer_{ax}_cm2_s": d for ax in ("xx", "yy", "zz")}}

    reps = [vals(t, 5.0 if t == 400.0 else 1.0) for t in T]
    flags = [{"diffusive_D_tracer": t != 400.0, "diffusive_D_jump": t != 400.0} for t in T]
    kw = dict(basis="sigma_T", seed=1, density_cm3=1e22, charge_e=1.0)
    arr, axes, fits, notes = arrhenius_report(T, reps, diffusive=flags, **kw)
    assert arr["excluded_not_diffusive_K"] == [400.0] and arr["n_points"] == 3
    for f in fits.values():
        assert abs(f.Ea_eV - 0.3) < 4 * f.Ea_err_eV, (f.basis, f.Ea_eV)   # measured: 0.25 SE
    assert any("leave out 400 K" in n for n in notes)
    arr_all, _, fits_all, _ = arrhenius_report(T, reps, diffusive=None, **kw)
    assert arr_all["n_points"] == 4 and fits_all["sigma_T"].Ea_eV < 0.25   # the outlier pulls
    with pytest.raises(KeyError):                      # two of three flagged: no sigma fit left
        arrhenius_report(T[1:], reps[1:], diffusive=[flags[0], flags[0], flags[1]],
                         **kw)[2]["sigma_T"]


def test_auto_basis_is_chosen_from_the_temperatures_each_fit_uses():
    """``auto`` compares the relative errors of D* and sigma T over the temperatures each fit
    may use: a non-diffusive temperature (left out of the fit) cannot decide it, and a basis
    without a fit is never chosen."""
    from kmc.analysis.report import arrhenius_report, choose_basis
    from kmc.constants import KB_EV_K

    rng = np.random.default_rng(5)

    def vals(t: float, err_d: float, err_j: float) -> dict:
        base = 1e-5 * np.exp(-0.3 / (KB_EV_K * t))
        d = base * (1 + err_d * rng.standard_normal(8))
        j = base * (1 + err_j * rng.standard_normal(8))
        return {"D_tracer_cm2_s": d, "D_jump_cm2_s": j, "sigma_S_cm": j * 1e3 / t,
                **{f"D_tracer_{ax}_cm2_s": d for ax in ("xx", "yy", "zz")}}

    # D* 1 % everywhere; D_J 0.1 % where it is diffusive, 30 % at the two early temperatures
    reps = [vals(400.0, 0.01, 0.3), vals(500.0, 0.01, 0.3), vals(600.0, 0.01, 0.001),
            vals(700.0, 0.01, 0.001)]
    T = [400.0, 500.0, 600.0, 700.0]
    flags = [{"diffusive_D_tracer": True, "diffusive_D_jump": t >= 600.0} for t in T]
    assert choose_basis(reps)[0] == "D_tracer"                # all four: medians 1 % vs ~15 %
    basis, med = choose_basis(reps, T, flags)
    assert basis == "sigma_T" and med["sigma_T"] < 0.002 < med["D_tracer"]
    assert choose_basis(reps, T, flags, fitted=["D_tracer"])[0] == "D_tracer"
    kw = dict(basis="auto", seed=1, density_cm3=1e22, charge_e=1.0)
    arr, _, fits, _ = arrhenius_report(T, reps, diffusive=flags, **kw)
    assert arr["basis"] == "sigma_T" and arr["excluded_not_diffusive_K"] == [400.0, 500.0]
    # only one diffusive D_J temperature: no sigma T fit, so auto takes D*
    one = [{"diffusive_D_tracer": True, "diffusive_D_jump": t == 700.0} for t in T]
    arr, _, fits, _ = arrhenius_report(T, reps, diffusive=one, **kw)
    assert "sigma_T" not in fits and arr["basis"] == "D_tracer"


def test_run_hands_each_temperatures_diffusive_flags_to_the_arrhenius_fit(monkeypatch):
    import kmc.runs.runner as runner
    seen = {}
    real = runner.arrhenius_report

    def spy(*args, **kw):
        seen["diffusive"] = kw.get("diffusive")
        return real(*args, **kw)

    monkeypatch.setattr(runner, "arrhenius_report", spy)
    cfg = Config.from_dict({"lattice": {"builtin": "sc", "supercell": [4, 4, 4]},
                            "occupancy": {"filling": 0.5},
                            "run": {"hops_per_ion": 40, "replicas": 2, "seed": 3,
                                    "temperatures_K": [500.0, 700.0]}})
    res = run_config(cfg)
    flags = seen["diffusive"]
    assert [f["diffusive_D_jump"] for f in flags] == [r["diffusive_D_jump"] for r in res.results]
    assert len(flags) == 2
