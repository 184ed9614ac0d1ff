"""Campaigns: expansion, validation before any run, the resumable store, executors, exports and
the SIGKILL/resume acceptance test."""
from __future__ import annotations

import hashlib
import json
import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import kmc.campaign.executors as campaign_mod  # where the workers' execute_point lives
from kmc.campaign.core import Campaign
from kmc.campaign.executors import DaskExecutor
from kmc.campaign.spec import derive_seed
from kmc.campaign.store import STORE_NAME, TIMING_KEYS, Store, campaign_lock
from kmc.cli.main import main
from kmc.config.keys import canonical_json, parse_dotted, run_key
from kmc.exceptions import CampaignError, CheckpointError, ConfigError, ResultWarning
from kmc.runs.checkpoint import CheckpointDir

BASE = """
[lattice]
builtin = "sc"
supercell = [4, 4, 4]

[occupancy]
filling = 0.5

[run]
hops_per_ion = {hops}
equilibration_hops_per_ion = 5
replicas = 2
temperatures_K = [500.0]
seed = 11
"""

TINY = """
base = "base.toml"

[campaign]
name = "tiny"
seed = 5

[grid]
"occupancy.filling" = [0.25, 0.5]
"run.temperatures_K" = [400, 500, 650]

[analysis]
arrhenius = true
"""

#: most campaigns here are short on purpose (store, resume, executors); the warning has its own test
pytestmark = pytest.mark.filterwarnings("ignore::kmc.exceptions.ResultWarning")


def write_campaign(tmp_path: Path, text: str = TINY, hops: int = 30, name: str = "c.toml") -> Path:
    (tmp_path / "base.toml").write_text(BASE.format(hops=hops))
    path = tmp_path / name
    path.write_text(text)
    return path


def store_rows(out: Path) -> int:
    with Store(out, readonly=True) as st:
        return len(st)


# ------------------------------------------------------------------------------ expansion, keys
def test_parse_dotted_quoting():
    assert parse_dotted("run.temperatures_K") == ("run", "temperatures_K")
    assert parse_dotted('model.barrier_eV."site-site@1.00"') == ("model", "barrier_eV",
                                                                 "site-site@1.00")
    assert parse_dotted("a . 'b.c' . d") == ("a", "b.c", "d")
    for bad in ["", "a..b", 'a."b', "a.b c"]:
        with pytest.raises(ConfigError):
            parse_dotted(bad)


def test_expansion_order_zip_and_group_labels(tmp_path):
    text = TINY + """
[zip]
"lattice.builtin" = ["sc", "bcc"]
"lattice.supercell" = [[4, 4, 4], [3, 3, 3]]
"""
    c = Campaign.from_file(write_campaign(tmp_path, text))
    assert len(c.points) == 2 * 3 * 2
    # the last axis (the zip group) varies fastest, then temperature, then filling
    first = [(p.values["occupancy.filling"], p.values["run.temperatures_K"],
              p.values["lattice.builtin"]) for p in c.points[:4]]
    assert first == [(0.25, 400, "sc"), (0.25, 400, "bcc"), (0.25, 500, "sc"), (0.25, 500, "bcc")]
    assert c.points[1].config["lattice"]["supercell"] == [3, 3, 3]
    assert len({p.key for p in c.points}) == len(c.points)
    groups = c.groups()
    assert len(groups) == 4 and all(len(g) == 3 for g in groups.values())
    assert c.group_label(c.points[1].group) == "filling = 0.25, builtin = bcc"


def test_seeds_and_keys_depend_on_the_point_only(tmp_path):
    a = Campaign.from_file(write_campaign(tmp_path))
    reordered = """
base = "base.toml"
[campaign]
name = "other-name"
seed = 5
[grid]
"run.temperatures_K" = [650, 500, 400]
"occupancy.filling" = [0.5, 0.25]
[analysis]
arrhenius = true
"""
    b = Campaign.from_file(write_campaign(tmp_path, reordered, name="b.toml"))
    by_cfg = {canonical_json({**p.config, "run": {**p.config["run"], "seed": 0}}): (p.key, p.seed)
              for p in a.points}
    for p in b.points:
        assert by_cfg[canonical_json({**p.config, "run": {**p.config["run"], "seed": 0}})] == \
            (p.key, p.seed)
    p = a.points[0]
    assert p.seed == derive_seed(p.config, 5) and p.config["run"]["seed"] == p.seed
    assert p.key == run_key(p.config)
    assert len({q.seed for q in a.points}) == len(a.points)
    # without [campaign] seed every point keeps the base's seed
    plain = TINY.replace("seed = 5\n", "")
    c = Campaign.from_file(write_campaign(tmp_path, plain, name="c2.toml"))
    assert {q.seed for q in c.points} == {11}


# ------------------------------------------------------------------------------ bad campaigns
BAD = {
    "unknown grid key": ('[grid]\n"run.temprature_K" = [400, 500]\n',
                         ['"run.temprature_K"', "did you mean 'temperatures_K'"]),
    "unknown section": ('[grid]\n"runn.seed" = [1, 2]\n', ['"runn.seed"', "'run'"]),
    "empty list": ('[grid]\n"occupancy.filling" = []\n', ["empty list"]),
    "type mismatch": ('[grid]\n"run.replicas" = [2, "three"]\n',
                      ['"run.replicas" = "three"', "integer"]),
    "not a list": ('[grid]\n"run.replicas" = 2\n', ["must be a list"]),
    "out of range": ('[grid]\n"occupancy.filling" = [0.5, 2.0]\n', ['= 2.0', "between 0 and 1"]),
    "zip lengths": ('[zip]\n"occupancy.filling" = [0.2, 0.4]\n"run.replicas" = [2, 3, 4]\n',
                    ["same length"]),
    "grid and zip": ('[grid]\n"run.replicas" = [2, 3]\n[zip]\n"run.replicas" = [2, 3]\n',
                     ["both [grid] and [zip]"]),
    "unknown top key": ('[gird]\n"run.replicas" = [2, 3]\n', ["did you mean 'grid'"]),
    "unknown analysis key": ('[analysis]\narhenius = true\n', ["did you mean 'arrhenius'"]),
    "one temperature": ('[grid]\n"occupancy.filling" = [0.2, 0.4]\n[analysis]\narrhenius = true\n',
                        ["at least two temperatures"]),
    "zero ions (needs the built lattice)": ('[grid]\n"occupancy.filling" = [0.5, 0.001]\n',
                                            ["campaign point 2 of 2", "0 ions"]),
    "duplicate value": ('[grid]\n"run.replicas" = [2, 2.0]\n', ["same simulation"]),
    "missing base": ('PLACEHOLDER', ["no config file"]),
    "invalid TOML": ('[grid\n', ["not valid TOML"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_campaign_fails_before_anything_with_one_sentence(tmp_path, capsys, case):
    body, needles = BAD[case]
    text = 'base = "nope.toml"\n' if body == "PLACEHOLDER" else 'base = "base.toml"\n' + body
    path = write_campaign(tmp_path, text)
    out = tmp_path / "out"
    code = main(["campaign", str(path), "--out", str(out), "--workers", "1", "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kmc: error: "), captured.err
    assert lines[0].rstrip().endswith((".", "?")), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists()  # nothing created


def test_unwritable_out_and_bad_options_exit_2(tmp_path, capsys):
    path = write_campaign(tmp_path)
    (tmp_path / "a_file").write_text("x")
    cases = [["--out", str(tmp_path / "a_file" / "sub")], ["--out", str(tmp_path / "a_file")],
             ["--out", str(tmp_path / "o"), "--workers", "0"],
             ["--out", str(tmp_path / "o"), "--executor", "local", "--scheduler", "tcp://x:1"]]
    for extra in cases:
        assert main(["campaign", str(path), "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kmc: error: "), err
    assert not (tmp_path / "o").exists()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no campaign store" in capsys.readouterr().err


def test_bad_campaign_leaves_an_existing_store_untouched(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["campaign", str(write_campaign(tmp_path)), "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir() if p.is_file()}
    bad = write_campaign(tmp_path, 'base = "base.toml"\n[grid]\n"run.replicas" = [2, "x"]\n',
                         name="bad.toml")
    capsys.readouterr()
    assert main(["campaign", str(bad), "--out", str(out), "--quiet"]) == 2
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir() if p.is_file()}
    assert after == before


def test_second_campaign_on_the_same_dir_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with campaign_lock(out):
        code = main(["campaign", str(write_campaign(tmp_path)), "--out", str(out), "--workers",
                     "1", "--quiet"])
    assert code == 2 and "another kmc campaign" in capsys.readouterr().err
    assert not (out / STORE_NAME).exists()


# ------------------------------------------------------------------------------ store and resume
def test_store_insert_or_ignore_never_duplicates(tmp_path):
    k1 = hashlib.sha256(b"{}").hexdigest()          # a row's key is the sha256 of its config
    with Store(tmp_path) as st:
        kw = dict(config_json="{}", seed=1, version="x", status="ok", result_json='{"results":[]}')
        assert st.put(k1, **kw) is True
        assert st.put(k1, **{**kw, "seed": 2}) is False
        assert len(st) == 1 and st.rows()[0]["seed"] == 1
        assert st.put(k1, **{**kw, "seed": 3}, replace=True) is True
        assert len(st) == 1 and st.rows()[0]["seed"] == 3
        assert st.integrity_ok()
        with pytest.raises(ValueError, match="sha256"):
            st.put("k2", **kw)
    con = sqlite3.connect(tmp_path / STORE_NAME)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()


def test_not_a_store_is_refused(tmp_path):
    con = sqlite3.connect(tmp_path / STORE_NAME)
    con.execute("CREATE TABLE other (x)")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="not a kmc campaign store"):
        Store(tmp_path)


def test_resume_skips_done_points_and_no_resume_recomputes(tmp_path):
    c = Campaign.from_file(write_campaign(tmp_path), out=tmp_path / "out")
    r1 = c.run(workers=1, export=False)
    assert (r1.executed, r1.skipped, r1.ok) == (6, 0, True)
    with Store(c.out, readonly=True) as st:
        fp = st.fingerprint()
    r2 = c.run(workers=1, export=False)
    assert (r2.executed, r2.skipped) == (0, 6)
    con = sqlite3.connect(c.out / STORE_NAME)
    with con:
        con.execute("DELETE FROM runs WHERE key = ?", (c.points[3].key,))
    con.close()
    r3 = c.run(workers=1, export=False)
    assert (r3.executed, r3.skipped) == (1, 5)
    r4 = c.run(workers=1, export=False, resume=False)
    assert (r4.executed, r4.skipped) == (6, 0)
    with Store(c.out, readonly=True) as st:
        assert len(st) == 6 and st.fingerprint() == fp


def test_kmc_errors_are_stored_and_crashes_are_retried(tmp_path, monkeypatch):
    text = 'base = "base.toml"\n[grid]\n"run.temperatures_K" = [1.0, 500.0, 600.0]\n'
    c = Campaign.from_file(write_campaign(tmp_path, text), out=tmp_path / "out")
    real = campaign_mod.execute_point

    def flaky(config_json, **kw):
        if json.loads(config_json)["run"]["temperatures_K"] == [600.0]:
            raise RuntimeError("worker lost")
        return real(config_json, **kw)
    monkeypatch.setattr(campaign_mod, "execute_point", flaky)
    with pytest.raises(CampaignError, match=r"1 of the 3 runs .* crashed .*point 3: "
                                            r"RuntimeError: worker lost") as info:
        c.run(workers=1, export=False)       # never returns normally with crashed runs
    r = info.value.report
    assert r.executed == 2 and len(r.errors) == 1 and len(r.crashed) == 1 and not r.ok
    assert "no hop can happen at 1 K" in r.errors[0][1]
    monkeypatch.setattr(campaign_mod, "execute_point", real)
    r = c.run(workers=1)
    assert (r.executed, r.skipped, len(r.crashed)) == (1, 2, 0)   # the error row is final
    df = c.results()
    assert df["status"].tolist() == ["error", "ok", "ok"]
    assert "no hop can happen" in df["error"][0]


# ------------------------------------------------------------------------------ exports
def test_exports_csv_parquet_and_figures(tmp_path, capsys):
    out = tmp_path / "out"
    # 300 hops per ion: every temperature diffusive, so each group has its Arrhenius fit
    assert main(["campaign", str(write_campaign(tmp_path, hops=300)), "--out", str(out), "--workers",
                 "1", "--quiet"]) == 0
    assert (out / "summary.csv").is_file() and (out / "figures" / "summary.png").is_file()
    assert (out / "figures" / "arrhenius.png").is_file()
    assert main(["report", str(out), "--format", "all"]) == 0
    import pandas as pd

    csv = pd.read_csv(out / "summary.csv")
    pq = pd.read_parquet(out / "summary.parquet")
    assert len(csv) == len(pq) == 6
    for col in ["point", "key", "occupancy.filling", "run.temperatures_K", "group", "seed",
                "status", "temperature_K", "sigma_S_cm", "sigma_err_S_cm", "D_tracer_cm2_s",
                "haven_ratio", "wall_s", "network.n_ions", "version"]:
        assert col in csv.columns and col in pq.columns, col
    with Store(out, readonly=True) as st:
        stored = {r["key"]: r["result"]["results"][0]["sigma_S_cm"] for r in st.rows()}
    # exported numbers are the stored numbers, bit for bit (CSV floats round-trip)
    assert np.array_equal(csv["sigma_S_cm"].to_numpy(), [stored[k] for k in csv["key"]])
    assert np.array_equal(pq["sigma_S_cm"].to_numpy(), [stored[k] for k in pq["key"]])
    arr = pd.read_csv(out / "arrhenius.csv")
    assert len(arr) == 2 and np.all(arr["Ea_eV"] > 0) and np.all(arr["Ea_err_eV"] > 0)
    assert "sigma_300K_S_cm" in arr and "sigma_300K_1se_lo_S_cm" in arr
    assert not list(out.rglob(".kmc-tmp-*"))


@pytest.mark.parametrize("n_keys", [1, 2])
def test_summary_category_labels_inside_the_figure(tmp_path, n_keys):
    """Issue 19: long dopant labels ("Ta 0.75 on Zr", ...) are not cut at the figure edge: the
    saved PNG keeps a white margin all round."""
    from types import SimpleNamespace

    import matplotlib.image
    import pandas as pd

    from kmc.campaign.plots import campaign_figures

    labels = ["Ta 0.75 on Zr", "Ga 0.125 on Li1", "Al 0.125 on Li1", "Ta 0.375 on Zr",
              "Ga 0.25 on Li1", "Al 0.25 on Li1", "Ta 0.75 on Zr"][-7 + n_keys:]
    s = np.geomspace(3e-6, 4e-5, len(labels))
    table = pd.DataFrame({"dopants": labels, "sigma_300K_S_cm": s, "sigma_300K_1se_lo_S_cm": 0.9 * s,
                          "sigma_300K_1se_hi_S_cm": 1.1 * s, "Ea_eV": 0.29, "Ea_err_eV": 0.01,
                          "T_min_K": 450.0, "T_max_K": 700.0})
    axes = [("dopants", ["dopants"])]
    if n_keys == 2:
        table = pd.concat([table.assign(cell=v) for v in ("small", "large")], ignore_index=True)
        axes.append(("cell", ["cell"]))
    campaign = SimpleNamespace(name="llzo-dopants", basis="sigma", arrhenius=True,
                               group_axes=lambda: axes, fits=lambda out: {})
    (path,) = campaign_figures(campaign, tmp_path, {"arrhenius": table})
    ink = (matplotlib.image.imread(path)[..., :3] < 0.9).any(axis=2)
    edge = 8   # pixels, about 0.05 inch at the figures' 150 dpi
    assert not ink[:edge].any() and not ink[-edge:].any()
    assert not ink[:, :edge].any() and not ink[:, -edge:].any()


def test_python_api_and_pending_rows(tmp_path):
    c = Campaign.from_file(write_campaign(tmp_path, hops=300), out=tmp_path / "out")
    df = c.results()  # nothing run yet: every point pending, one row per temperature
    assert len(df) == 6 and set(df["status"]) == {"pending"}
    c.run(workers=1, export=False)
    df = c.results()
    assert set(df["status"]) == {"ok"} and df["sigma_S_cm"].gt(0).all()
    fits = c.fits()
    assert len(fits) == 2 and all(gf.fit is not None for gf in fits.values())
    again = Campaign.from_store(c.out)
    assert [p.key for p in again.points] == [p.key for p in c.points]


def test_campaign_fits_leave_out_results_that_are_not_diffusive(tmp_path, monkeypatch):
    c = Campaign.from_file(write_campaign(tmp_path, hops=300), out=tmp_path / "out")
    c.run(workers=1, export=False)
    before = {gf.label: gf.fit.T_K.size for gf in c.fits().values()}
    assert set(before.values()) == {3}
    rows = c._rows()
    for row in rows.values():                 # flag one temperature of every point as too early
        for r in row["result"]["results"]:
            if r["temperature_K"] == 400.0:
                r["diffusive_D_jump"] = False
    monkeypatch.setattr(Campaign, "_rows", lambda self, out=None: rows)
    for gf in c.fits().values():
        assert sorted(gf.fit.T_K) == [500.0, 650.0], gf.label
        assert "left out, not diffusive: 400 K" in gf.note


# ------------------------------------------------------------------------------ executors
def test_local_pool_and_dask_localcluster_give_identical_stores(tmp_path):
    pytest.importorskip("distributed")
    path = write_campaign(tmp_path, hops=60)
    fps = {}
    for name, kw in {"inproc": dict(workers=1), "pool2": dict(workers=2)}.items():
        c = Campaign.from_file(path, out=tmp_path / name)
        assert c.run(export=False, **kw).executed == 6
        with Store(c.out, readonly=True) as st:
            fps[name] = (st.fingerprint(), st.canonical_rows())
    with DaskExecutor(workers=2) as ex:
        assert ex.scheduler_address.startswith("tcp://127.0.0.1:")
        assert ex.worker_addresses() and all(a.startswith("tcp://127.0.0.1:")
                                            for a in ex.worker_addresses())
        c = Campaign.from_file(path, out=tmp_path / "dask")
        assert c.run(ex, export=False).executed == 6
    with Store(c.out, readonly=True) as st:
        fps["dask"] = (st.fingerprint(), st.canonical_rows())
    assert fps["inproc"] == fps["pool2"] == fps["dask"]
    # ...and the timing really is excluded, not equal by accident of an empty store
    assert len(fps["dask"][1]) == 6 and all(k not in fps["dask"][1][0][5] for k in TIMING_KEYS)


# ------------------------------------------------------------------------------ checkpoints
def test_checkpoint_dir_storage(tmp_path):
    cp = CheckpointDir(tmp_path)
    assert cp.load("a" * 64) is None
    cp.save("a" * 64, b"state-1")
    cp.save("a" * 64, b"state-2")
    assert cp.load("a" * 64) == b"state-2" and cp.keys() == {"a" * 64}
    os.replace(cp.path("a" * 64), cp.path("b" * 64))
    with pytest.raises(CheckpointError):
        cp.load("b" * 64)  # a file can never be applied to another run
    cp.discard("b" * 64)
    assert cp.keys() == set()


# ------------------------------------------------------------------------------ SIGKILL + resume
KILL = """
base = "base.toml"

[campaign]
name = "killme"
seed = 99

[grid]                               # every point costs the same number of hops
"model.barrier_eV" = [0.2, 0.25, 0.3, 0.35]
"run.temperatures_K" = [400, 500, 600, 700]
"""


def _start(path: Path, out: Path, every: float = 0.3, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kmc", "campaign", str(path), "--out", str(out),
         "--workers", "1", "--checkpoint-every", str(every)], stdout=stdout,
        stderr=subprocess.PIPE, text=True,
        cwd=out.parent)  # not the repo root: `-m` would import the uncompiled source tree


def _wait_for_start(proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Wait for the 'running N on ...' status line (printed when the runs start)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if sel.select(timeout=0.05):
                line = proc.stderr.readline()
                if not line:
                    return False
                if "running" in line:
                    return True
    finally:
        sel.close()
    return False


@pytest.mark.validation
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_store(tmp_path):
    path = write_campaign(tmp_path, KILL, hops=4000)
    ref = Campaign.from_file(path, out=tmp_path / "ref")
    t0 = time.perf_counter()
    assert ref.run(workers=1, export=False).executed == 16
    per_point = (time.perf_counter() - t0) / 16
    total = len(ref.points)
    keys = {p.key for p in ref.points}

    out = tmp_path / "killed"
    rng = random.Random(20240611)
    kills, mid_run_kills, history = 0, 0, []
    window = 3.0 * per_point          # adapted so the kills spread over the whole campaign
    for attempt in range(12):
        before = store_rows(out) if (out / STORE_NAME).exists() else 0
        proc = _start(path, out)
        if rng.random() < 0.2:            # somewhere in start-up, validation or the first run
            time.sleep(rng.uniform(0.0, 2.5))
        else:                             # somewhere inside the next few runs
            _wait_for_start(proc)
            time.sleep(rng.uniform(0.0, window))
        if proc.poll() is None:
            pending = (store_rows(out) if (out / STORE_NAME).exists() else 0) < total
            proc.send_signal(signal.SIGKILL)
            kills += 1
            mid_run_kills += pending
        proc.wait()
        proc.stderr.close()
        if (out / STORE_NAME).exists():
            with Store(out, readonly=True) as st:
                assert st.integrity_ok()
                done = st.done_keys()
                assert len(st) == len(done) and done <= keys     # no duplicates, no strangers
                rows = len(st)
            assert rows >= before                                # nothing lost
            history.append(rows)
            gained = rows - before
            window *= 1.5 if gained == 0 else (0.5 if gained >= 3 else 1.0)
    assert kills >= 10 and mid_run_kills >= 6, (kills, mid_run_kills, history)
    # finish without interruption
    proc = _start(path, out)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    with Store(out, readonly=True) as a, Store(ref.out, readonly=True) as b:
        assert len(a) == len(b) == total
        assert a.canonical_rows() == b.canonical_rows()
        assert a.fingerprint() == b.fingerprint()
    assert not list(out.rglob(".kmc-tmp-*"))
    print(f"\n{kills} SIGKILLs ({mid_run_kills} with runs pending); rows after each kill: "
          f"{history}; final {total} rows identical to the uninterrupted run")


ONE_LONG = """
base = "base.toml"

[campaign]
name = "long"
seed = 4

[grid]
"occupancy.filling" = [0.5]
"""


def _mtimes(directory: Path) -> dict:
    out = {}
    for p in directory.glob("*.ckpt") if directory.exists() else ():
        try:
            out[p.name] = p.stat().st_mtime_ns
        except FileNotFoundError:                   # replaced under our feet: look again
            pass
    return out


@pytest.mark.validation
def test_killed_run_resumes_from_its_checkpoint_to_the_uninterrupted_row(tmp_path):
    """One long run, checkpointed every 0.1 s and SIGKILLed twice after a checkpoint exists:
    the resumed run reuses the saved hops and stores exactly the uninterrupted row."""
    path = write_campaign(tmp_path, ONE_LONG, hops=60000)
    ref = Campaign.from_file(path, out=tmp_path / "ref")
    t0 = time.perf_counter()
    assert ref.run(workers=1, export=False, checkpoint_every=0).executed == 1
    print(f"\nuninterrupted run: {time.perf_counter() - t0:.1f} s")
    out = tmp_path / "killed"
    ckpt_dir = out / "checkpoints"
    sizes = []
    for _ in range(2):
        proc = _start(path, out, every=0.1)
        end = time.monotonic() + 60
        before = _mtimes(ckpt_dir)
        while time.monotonic() < end and proc.poll() is None:
            now = _mtimes(ckpt_dir)
            if now and now != before:               # a fresh checkpoint of this attempt
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before a checkpoint was written"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        sizes.append(len(list(ckpt_dir.glob("*.ckpt"))))
        assert store_rows(out) == 0
    assert sizes == [1, 1]
    proc = _start(path, out, every=0.1, stdout=subprocess.PIPE)
    stdout, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "1 resumed from checkpoints" in stdout and "resumed from its checkpoint" in err
    reused = int(err.split("resumed from its checkpoint, ")[1].split()[0])
    assert reused > 0
    with Store(out, readonly=True) as a, Store(ref.out, readonly=True) as b:
        assert a.canonical_rows() == b.canonical_rows() and len(a) == 1
    assert not list(ckpt_dir.glob("*.ckpt"))           # deleted once the row is stored
    print(f"\nresumed after 2 SIGKILLs reusing {reused} hops; row identical to the "
          f"uninterrupted run")


def test_summary_warns_about_results_measured_before_the_diffusive_regime(tmp_path):
    """2 hops per ion cannot reach the diffusive regime on the half-filled sc gas, 200 do: the
    summary says how many results are not diffusive (as `kmc run` does per result) only then."""
    short = Campaign.from_file(write_campaign(tmp_path, hops=2), out=tmp_path / "short")
    with pytest.warns(ResultWarning) as caught:  # a script sees them as Python warnings
        r = short.run("local", workers=1, progress=False, log=lambda m: None)
    assert (r.n_results, len(r.not_diffusive)) == (6, 6)
    assert len(r.warnings) == 1 and [str(w.message) for w in caught] == r.warnings
    assert "6 of the 6 results are not in the diffusive regime" in r.warnings[0]
    assert "hops_per_ion" in r.warnings[0]
    assert "diffusive regime" not in r.summary()       # the report text stays clean
    long_ = Campaign.from_file(write_campaign(tmp_path, hops=200, name="d.toml"), out=tmp_path / "long")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultWarning)
        r = long_.run("local", workers=1, progress=False, log=lambda m: None)
    assert r.n_results == 6 and r.not_diffusive == [] and r.warnings == []


def test_cli_prints_the_not_diffusive_warning_on_stderr_only(tmp_path, capsys):
    """`kmc campaign` sends the report to stdout (users redirect it into files) and the
    not-diffusive warning to stderr; summary.csv keeps the per-result `diffusive` flag."""
    import csv

    out = tmp_path / "short"
    path = write_campaign(tmp_path, hops=2)
    assert main(["campaign", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "campaign" in cap.out and "diffusive" not in cap.out
    warn = [ln for ln in cap.err.splitlines() if "not in the diffusive regime" in ln]
    assert len(warn) == 1 and warn[0].startswith("kmc: warning: 6 of the 6 results")
    assert "ResultWarning" not in cap.err  # printed once, as the CLI's own line
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["diffusive"] for r in rows} == {"False"}


def test_a_moved_campaign_directory_resumes_and_its_store_holds_no_absolute_path(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    c = Campaign.from_file(write_campaign(a), out=a / "out")
    c.run("local", workers=1, progress=False, log=lambda m: None)
    with Store(a / "out", readonly=True) as st:
        spec = st.get_meta("campaign")
    assert not any(str(tmp_path) in str(spec.get(k)) for k in ("source", "base_dir")), spec
    assert str(tmp_path) not in json.dumps(spec)
    b = tmp_path / "moved"
    a.rename(b)
    again = Campaign.from_file(b / "c.toml", out=b / "out")
    r = again.run("local", workers=1, progress=False, log=lambda m: None)
    assert (r.executed, r.skipped) == (0, 6)        # same campaign: everything from the store
    back = Campaign.from_store(b / "out")
    assert back.base_dir == b.resolve() and len(back.results()) == 6
