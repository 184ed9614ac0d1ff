"""Faults and hostile files (issue 20): each case ends in one sentence and exit 2, a quiet exit,
or a clean stop that resumes, never a traceback or a partial result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import kmc.runs.replicas as replicas
import kmc.runs.runner as runner
from kmc.campaign.store import TIMING_KEYS
from kmc.cli.main import main
from kmc.config import Config
from kmc.runs.checkpoint import RUN_CHECKPOINT_NAME

SMALL = """\
[lattice]
builtin = "sc"
supercell = [4, 4, 4]

[occupancy]
filling = 0.5

[model]
attempt_frequency_THz = 10.0
barrier_eV = 0.25

[run]
temperatures_K = [500.0, 700.0]
hops_per_ion = 40
equilibration_hops_per_ion = 2
replicas = 2
time_origins = 2
seed = 42
"""


def one_sentence(err: str, *phrases: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("kmc: error: "), err
    assert "Traceback" not in err
    for p in phrases:
        assert p in lines[0], (p, lines[0])


def stripped(path: Path) -> dict:
    d = json.loads(path.read_text())
    for r in d["results"]:
        for k in TIMING_KEYS:
            r.pop(k)
    return d


@pytest.fixture
def cfg(tmp_path) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(SMALL)
    return p


@pytest.mark.parametrize("value", ["1e19", "1e30"])
def test_astronomical_hops_per_ion_is_one_sentence(tmp_path, capsys, value):
    p = tmp_path / "big.toml"
    p.write_text(SMALL.replace("hops_per_ion = 40", f"hops_per_ion = {value}"))
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    one_sentence(capsys.readouterr().err, "64-bit", "lower hops_per_ion")
    assert not (tmp_path / "out").exists()


def test_unwritable_campaign_out_is_one_sentence(tmp_path, capsys, cfg, monkeypatch):
    spec = tmp_path / "camp.toml"
    spec.write_text('base = "c.toml"\n[grid]\n"run.seed" = [1, 2]\n')
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):   # a file system that refuses (root ignores permission bits)
        if self.name == "camp-out":
            raise PermissionError(1, "Operation not permitted")
        return real_mkdir(self, *a, **k)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(["campaign", str(spec), "--out", str(tmp_path / "camp-out"), "--workers", "1",
                 "--quiet"]) == 2
    one_sentence(capsys.readouterr().err, "cannot write to the output directory", "--out")


def test_zero_byte_store_is_a_new_store(tmp_path, capsys, cfg):
    spec = tmp_path / "camp.toml"
    spec.write_text('base = "c.toml"\n[grid]\n"run.seed" = [1]\n')
    out = tmp_path / "camp"
    out.mkdir()
    (out / "store.sqlite").write_bytes(b"")
    assert main(["campaign", str(spec), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    from kmc.campaign.store import Store
    with Store(out, readonly=True) as st:
        assert len(st) == 1


@pytest.mark.parametrize("fresh", [False, True])
def test_run_ckpt_that_is_a_directory_is_left_alone(tmp_path, capsys, cfg, fresh):
    out = tmp_path / "out"
    (out / RUN_CHECKPOINT_NAME).mkdir(parents=True)
    (out / RUN_CHECKPOINT_NAME / "keep.txt").write_text("mine")
    argv = ["run", str(cfg), "--out", str(out), "--quiet"] + (["--fresh"] if fresh else [])
    assert main(argv) == 2
    one_sentence(capsys.readouterr().err, "not a checkpoint file", "move it away")
    assert (out / RUN_CHECKPOINT_NAME / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [RUN_CHECKPOINT_NAME]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.parametrize("argv", [["info", "llzo-cubic"], ["run", "{cfg}", "--quiet"]])
def test_closed_stdout_pipe_exits_quietly(tmp_path, cfg, argv):
    """``kmc ... | head -1``: the reader goes away; kmc exits 141 without a traceback."""
    argv = [a.replace("{cfg}", str(cfg)) for a in argv]
    r, w = os.pipe()
    os.close(r)                                   # nobody will ever read: every write fails
    p = subprocess.run([sys.executable, "-m", "kmc.cli.main", *argv], stdout=w,
                       stderr=subprocess.PIPE, env=_env(), timeout=300)
    os.close(w)
    assert p.returncode == 141, p.stderr.decode()
    assert p.stderr.decode() == ""   # --quiet: the run's own warnings are silenced too


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_last_checkpoint_and_the_rerun_resumes_bit_identically(
        tmp_path, capsys, cfg, monkeypatch, signum):
    monkeypatch.setattr(replicas, "SAFE_POINT_HOPS", 64)
    ref_out = tmp_path / "ref"
    assert main(["run", str(cfg), "--out", str(ref_out), "--quiet"]) == 0
    reference = stripped(ref_out / "result.json")
    out = tmp_path / "out"
    argv = ["run", str(cfg), "--out", str(out), "--quiet", "--checkpoint-every", "3600"]
    real_call = runner._Saver.__call__
    calls = [0]

    def call(self):
        calls[0] += 1
        if calls[0] == 7:                         # arrives in the middle of the run
            os.kill(os.getpid(), signum)
        return real_call(self)
    monkeypatch.setattr(runner._Saver, "__call__", call)
    assert main(argv) == 128 + signum
    assert "interrupted; rerun" in capsys.readouterr().err
    assert (out / RUN_CHECKPOINT_NAME).is_file() and not (out / "result.json").exists()
    monkeypatch.setattr(runner._Saver, "__call__", real_call)
    assert main([a for a in argv if a != "--quiet"]) == 0
    assert "resumed from" in capsys.readouterr().err
    assert stripped(out / "result.json") == reference
    assert not (out / RUN_CHECKPOINT_NAME).exists()


# ---------------------------------------------------------------------------------- store integrity
TINY = SMALL.replace("temperatures_K = [500.0, 700.0]", "temperatures_K = [600.0]") \
            .replace("hops_per_ion = 40", "hops_per_ion = 4").replace("time_origins = 2",
                                                                       "time_origins = 1")


def _campaign(tmp_path: Path, seeds=(1, 2)) -> Path:
    (tmp_path / "c.toml").write_text(TINY)
    spec = tmp_path / f"camp{len(seeds)}.toml"
    spec.write_text(f'base = "c.toml"\n[grid]\n"run.seed" = {list(seeds)}\n')
    return spec


def _sigma(out: Path) -> list[float]:
    import csv
    with open(out / "summary.csv") as fh:
        return [float(r["sigma_S_cm"]) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("damage", ["flip a digit of the result", "edit the config"])
def test_damaged_store_row_is_reported_and_recomputed_never_served(tmp_path, capsys, damage):
    import sqlite3

    from kmc.campaign.core import Campaign
    spec = _campaign(tmp_path)
    out = tmp_path / "out"
    argv = ["campaign", str(spec), "--out", str(out), "--workers", "1"]
    assert main(argv) == 0
    good = _sigma(out)
    camp = Campaign.from_file(spec, out=out)
    key = camp.points[0].key
    con = sqlite3.connect(out / "store.sqlite")
    res, cfg_json = con.execute("SELECT result_json, config_json FROM runs WHERE key = ?",
                                (key,)).fetchone()
    if damage.startswith("flip"):
        i = res.index('"sigma_S_cm":') + len('"sigma_S_cm":') + 2   # a digit of the mantissa
        d = res[i]
        res = res[:i] + str((int(d) + 1) % 10) + res[i + 1:]
        con.execute("UPDATE runs SET result_json = ? WHERE key = ?", (res, key))
    else:
        con.execute("UPDATE runs SET config_json = ? WHERE key = ?",
                    (cfg_json.replace('"seed":1', '"seed":7'), key))
    con.commit()
    con.close()
    assert camp.results(out)["status"].tolist() == ["pending", "ok"]   # not served meanwhile
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr()
    assert "failed its integrity check" in text.err and "1 recomputed" in text.out
    assert _sigma(out) == good                                         # the true value again


def test_row_filed_under_another_key_with_a_valid_checksum_is_caught_by_its_key(tmp_path, capsys):
    """Point 2's row replaced by point 1's run, checksum recomputed: only the key derived again
    from the stored config can tell that the row is not point 2's."""
    import sqlite3

    from kmc.campaign.core import Campaign
    from kmc.campaign.store import Store, row_checksum
    spec = _campaign(tmp_path)
    out = tmp_path / "out"
    argv = ["campaign", str(spec), "--out", str(out), "--workers", "1"]
    assert main(argv) == 0
    good = _sigma(out)
    assert good[0] != good[1]                       # else serving the wrong row would go unseen
    camp = Campaign.from_file(spec, out=out)
    k1, k2 = (p.key for p in camp.points)
    con = sqlite3.connect(out / "store.sqlite")
    cfg1, seed1, version1, status1, res1, err1 = con.execute(
        "SELECT config_json, seed, version, status, result_json, error FROM runs WHERE key = ?",
        (k1,)).fetchone()
    con.execute("UPDATE runs SET config_json = ?, seed = ?, version = ?, status = ?, "
                "result_json = ?, error = ?, checksum = ? WHERE key = ?",
                (cfg1, seed1, version1, status1, res1, err1,
                 row_checksum(k2, cfg1, seed1, version1, status1, res1, err1), k2))
    con.commit()
    con.close()
    with Store(out, readonly=True) as st:
        assert st.bad_rows == {k2: "its config no longer hashes to its key"}
        assert st.done_keys() == {k1} and [r["key"] for r in st.rows()] == [k1]
    assert camp.results(out)["status"].tolist() == ["ok", "pending"]   # not served meanwhile
    capsys.readouterr()
    assert main(["report", str(out), "--no-figures"]) == 0           # the reader: not served
    assert "(1 ok, 1 pending)" in capsys.readouterr().out
    assert main(argv) == 0
    text = capsys.readouterr()
    assert "Traceback" not in text.err
    assert ("point 2: the stored row failed its integrity check (its config no longer hashes to "
            "its key); computing it again") in text.err
    assert "1 recomputed" in text.out
    assert _sigma(out) == good                                       # point 2's own value again


def test_a_different_campaign_into_a_used_out_needs_append(tmp_path, capsys):
    out = tmp_path / "out"
    first = _campaign(tmp_path, (1,))
    second = _campaign(tmp_path, (3, 4))
    assert main(["campaign", str(first), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    capsys.readouterr()
    argv = ["campaign", str(second), "--out", str(out), "--workers", "1", "--quiet"]
    assert main(argv) == 2
    one_sentence(capsys.readouterr().err, "different campaign", "--append")
    assert main([*argv, "--append"]) == 0
    from kmc.campaign.store import Store
    with Store(out, readonly=True) as st:
        assert len(st) == 3 and st.get_meta("appended")[0]["grid"] == {"run.seed": [1]}
    assert main(["campaign", str(second), "--out", str(out), "--workers", "1", "--quiet"]) == 0


def test_schema_1_store_is_migrated_and_its_rows_checked(tmp_path):
    import hashlib
    import sqlite3

    from kmc.campaign.store import APPLICATION_ID, Store
    cfg_ok, cfg_bad = '{"a":1}', '{"a":2}'
    k_ok = hashlib.sha256(cfg_ok.encode()).hexdigest()
    k_bad = hashlib.sha256(b'{"a":3}').hexdigest()          # a key its config does not give
    con = sqlite3.connect(tmp_path / "store.sqlite")
    con.executescript(f"""
        CREATE TABLE runs (key TEXT PRIMARY KEY, config_json TEXT NOT NULL, seed INTEGER NOT NULL,
            version TEXT NOT NULL, status TEXT NOT NULL, result_json TEXT, error TEXT,
            elapsed_s REAL, created TEXT NOT NULL);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        PRAGMA user_version = 1; PRAGMA application_id = {APPLICATION_ID};""")
    for k, c in ((k_ok, cfg_ok), (k_bad, cfg_bad)):
        con.execute("INSERT INTO runs VALUES (?, ?, 1, 'old', 'ok', '{\"results\":[]}', NULL, "
                    "1.0, 'now')", (k, c))
    con.commit()
    con.close()
    with Store(tmp_path) as st:
        assert st.done_keys() == {k_ok} and set(st.bad_rows) == {k_bad}
    with Store(tmp_path, readonly=True) as st:
        assert [r["key"] for r in st.rows()] == [k_ok]
    con = sqlite3.connect(tmp_path / "store.sqlite")
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2


# ---------------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("path", ["../../x.extxyz", "/tmp/x.extxyz", "sub/../../x.extxyz",
                                  "~/x.extxyz", "C:/x.extxyz"])
def test_output_paths_outside_out_are_refused(tmp_path, capsys, path):
    victim = tmp_path / "x.extxyz"
    victim.write_text("precious")
    p = tmp_path / "t.toml"
    p.write_text(SMALL + f'\n[output]\ntrajectory = "{path}"\n')
    out = tmp_path / "a" / "b"
    assert main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    one_sentence(capsys.readouterr().err, "leaves the output directory", "relative")
    assert victim.read_text() == "precious" and not out.exists()


def test_existing_files_are_never_replaced_silently(tmp_path, capsys, monkeypatch):
    p = tmp_path / "t.toml"
    p.write_text(TINY + '\n[output]\ntrajectory = "t.extxyz"\ntrajectory_frames = 2\n')
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.extxyz").write_text("precious")
    assert main(["run", str(p), "--quiet"]) == 2                  # no --out: the working dir
    one_sentence(capsys.readouterr().err, "exists already", "--out")
    assert (tmp_path / "t.extxyz").read_text() == "precious"
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 0
    assert "replaces" not in capsys.readouterr().err
    assert main(["run", str(p), "--out", str(out)]) == 0          # a rerun says what it replaces
    err = capsys.readouterr().err
    assert "replaces result.json" in err and "t.extxyz" in err


# ---------------------------------------------------------------------------------- plausibility
@pytest.mark.parametrize("edit, phrases", [
    (("barrier_eV = 0.25", "barrier_eV = -0.3"), ("negative", "at least 0")),
    (("attempt_frequency_THz = 10.0", "attempt_frequency_THz = 1e6"), ("1e+18 Hz", "in THz")),
    (("attempt_frequency_THz = 10.0", "attempt_frequency_THz = 1e-3"), ("outside", "in THz")),
    (("temperatures_K = [500.0, 700.0]", "temperatures_K = [500.0, 5000.0]"),
     ("5000 K", "melted")),
    (("barrier_eV = 0.25", "barrier_eV = 0.25\nfield_V_per_A = [2.0, 0.0, 0.0]"),
     ("far beyond linear response", "lower the field")),
])
def test_implausible_physics_is_one_sentence(tmp_path, capsys, edit, phrases):
    p = tmp_path / "bad.toml"
    p.write_text(SMALL.replace(*edit))
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    one_sentence(capsys.readouterr().err, *phrases)
    assert not (tmp_path / "out").exists()


def test_warnings_and_defaults_are_printed_and_recorded(tmp_path, capsys):
    text = (TINY.replace("barrier_eV = 0.25\n", "")
            .replace("attempt_frequency_THz = 10.0", "attempt_frequency_THz = 2000.0")
            .replace("temperatures_K = [600.0]\n", "")
            + "\n")
    text = text.replace("[model]\n", "[model]\nfield_V_per_A = [0.02, 0.0, 0.0]\n")
    p = tmp_path / "w.toml"
    p.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: [model] attempt_frequency_THz = 2000 THz" in err
    assert "default used: [model] barrier_eV = 0.25 eV" in err
    assert "default used: [run] temperatures_K = [600.0] K" in err
    notes = json.loads((out / "result.json").read_text())["notes"]
    assert any(n.startswith("warning: [model] attempt_frequency_THz") for n in notes)
    assert any(n.startswith("default used: [model] barrier_eV") for n in notes)
    assert any("max |qE.dr|/kT" in n and n.startswith("warning") for n in notes)


def test_config_keys_do_not_change_with_the_new_attributes():
    from kmc.config import Config
    from kmc.config.keys import run_key
    c = Config.from_toml(SMALL)
    assert "warnings" not in c.to_dict() and "defaults_used" not in c.to_dict()
    assert run_key(c.to_dict()) == run_key(Config.from_dict(c.to_dict()).to_dict())


CIF = """\
data_t
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Li1 Li 0 0 0 {occ}
O1 O 0.5 0.5 0.5 1
"""


@pytest.mark.parametrize("occ", ["-0.5", "1.5", "1.2(3)"])
def test_cif_occupancy_outside_0_1_names_the_site_and_value(tmp_path, capsys, occ):
    p = tmp_path / "bad.cif"
    p.write_text(CIF.format(occ=occ))
    assert main(["info", str(p)]) == 2
    one_sentence(capsys.readouterr().err, "atom site Li1", f"occupancy {float(occ[:3]):g}",
                 "outside 0-1")


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    real_init = runner.LineProgress.__init__
    monkeypatch.setattr(runner.LineProgress, "__init__",   # every update prints (not every 5 s)
                        lambda self, total, done=0, interval_s=5.0: real_init(self, total, done,
                                                                              0.0))
    p = tmp_path / "c.toml"
    p.write_text(TINY)
    assert main(["run", str(p)]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if " hops/s, about " in x]
    assert lines and lines[-1].startswith("kmc: ") and "%" in lines[-1]
    assert main(["run", str(p), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------- memory
def test_a_lattice_too_large_for_memory_is_refused_before_building(tmp_path, capsys):
    import time
    p = tmp_path / "huge.toml"
    p.write_text(SMALL.replace("supercell = [4, 4, 4]", "supercell = [500, 500, 500]"))
    t0 = time.perf_counter()
    assert main(["run", str(p), "--quiet"]) == 2                 # 1.25e8 sites: ~290 GB
    assert time.perf_counter() - t0 < 60
    one_sentence(capsys.readouterr().err, "needs about", "GB to build", "fewer repetitions")


def test_memory_guard_compares_the_estimate_with_available_memory(tmp_path, capsys,
                                                                  monkeypatch):
    import kmc.system.network as network
    p = tmp_path / "c.toml"
    p.write_text(TINY)
    need = network.estimated_peak_bytes(64, 64 * 6)               # sc 4x4x4: 6 hops per site
    monkeypatch.setattr(network, "available_memory_bytes", lambda: need - 1)
    assert main(["run", str(p), "--quiet"]) == 2
    one_sentence(capsys.readouterr().err, f"needs about {need / 1e9:.3g} GB",
                 f"only {(need - 1) / 1e9:.3g} GB")
    # exactly enough to build (the replicas' own memory is checked next: that guard is the next test's)
    import kmc.runs.runner as runner
    monkeypatch.setattr(runner, "check_replica_memory", lambda *a: None)
    monkeypatch.setattr(network, "available_memory_bytes", lambda: need)
    assert main(["run", str(p), "--quiet"]) == 0


def test_replicas_whose_frame_buffers_do_not_fit_are_refused_before_running(tmp_path, capsys,
                                                                            monkeypatch):
    """sc 100^3 with one vacancy and 256 frames needs 6 GB per replica for its frame buffer
    alone (measured 8.7 GB resident in one run): the run is refused with the estimate before
    any replica exists, whatever the construction guard allowed."""
    import kmc.system.network as network
    from kmc.runs.runner import replica_memory_bytes
    from kmc.runs.system import build_system

    p = tmp_path / "c.toml"
    p.write_text(TINY)
    cfg = Config.from_file(str(p))
    per_replica = replica_memory_bytes(build_system(cfg), cfg.run)
    assert per_replica == 226 * 64 + (cfg.run.msd_frames + 1) * 32 * 24    # 32 ions of 64 sites
    n_reps = cfg.run.replicas                      # one temperature, --workers 1
    monkeypatch.setattr(network, "available_memory_bytes", lambda: n_reps * per_replica - 1)
    assert main(["run", str(p), "--quiet", "--workers", "1"]) == 2
    one_sentence(capsys.readouterr().err, f"keeps {n_reps} replicas in memory", "msd_frames")
    assert not (tmp_path / "c").exists() and list(tmp_path.iterdir()) == [p]
    monkeypatch.setattr(network, "available_memory_bytes", lambda: 10 ** 12)
    assert main(["run", str(p), "--quiet", "--workers", "1"]) == 0
