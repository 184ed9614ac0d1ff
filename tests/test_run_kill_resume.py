"""`kmc run CONFIG --out DIR` checkpoints: SIGKILL the process at random moments (and once in the
middle of a checkpoint write), rerun the same command, and get exactly the uninterrupted result.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kmc.campaign.store import TIMING_KEYS
from kmc.cli.main import main
from kmc.config import Config
from kmc.config.keys import run_key
from kmc.runs.checkpoint import RUN_CHECKPOINT_NAME, CheckpointFile
from kmc.runs.runner import decode_checkpoint

CONFIG = """\
[lattice]
builtin = "sc"
supercell = [8, 8, 8]

[occupancy]
filling = 0.5

[model]
interactions_eV = { mobile_mobile = [[1.01, 0.03]] }

[run]
temperatures_K = [500.0, 700.0]
hops_per_ion = 4000
equilibration_hops_per_ion = 10
replicas = 2
seed = 5
time_origins = 2
msd_points = 5
"""
#: kills the test aims at (it needs the run to outlive them: at 5 kills the checkpoint
#: holds about half of the run's hops; 1000 hops per ion were too few on a faster machine,
#: 2026-12-07: the whole run took 3 s and finished before the kills)
KILLS = 5

# A `kmc run` whose third checkpoint write stops half-way: the temporary file holds half of the new
# checkpoint, the rename has not happened, and the process waits to be killed.
TORN_WRITER = r"""
import os, sys, time
from pathlib import Path
import kmc.files as store   # the atomic writer every checkpoint goes through

real = store.atomic_write_with
count = [0]


def torn_write(path, write):
    def half(tmp):
        write(tmp)
        if Path(path).name == "run.ckpt":
            count[0] += 1
            if count[0] >= 3:
                size = tmp.stat().st_size
                os.truncate(tmp, size // 2)
                Path(sys.argv[1]).write_text(f"{tmp}\n{size}")
                time.sleep(600)
    return real(path, half)


store.atomic_write_with = torn_write
from kmc.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def stripped(path: Path) -> dict:
    """result.json without the timing keys (which measure the machine, not the physics)."""
    data = json.loads(path.read_text())
    for r in data["results"]:
        for k in TIMING_KEYS:
            r.pop(k)
    return data


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted result (in-process, no checkpoints at all)."""
    d = tmp_path_factory.mktemp("reference")
    cfg = d / "c.toml"
    cfg.write_text(CONFIG)
    assert main(["run", str(cfg), "--out", str(d / "out"), "--quiet", "--checkpoint-every",
                 "0"]) == 0
    assert not (d / "out" / RUN_CHECKPOINT_NAME).exists()
    return stripped(d / "out" / "result.json")


def _env() -> dict[str, str]:
    # the installed kmc (compiled, with its data), never the source tree: no repo on the path
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _stamp(p: Path):
    try:
        st = p.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_result(tmp_path,
                                                                            reference, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    ckpt = out / RUN_CHECKPOINT_NAME
    argv = ["run", str(cfg), "--out", str(out), "--checkpoint-every", "0.05", "--json"]
    rng = random.Random(7)
    kills, saves_seen = 0, []
    for _ in range(KILLS):
        before = _stamp(ckpt)
        p = subprocess.Popen([sys.executable, "-m", "kmc.cli.main", *argv], cwd=tmp_path, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while _stamp(ckpt) == before and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)                       # wait for this attempt's first new save
        time.sleep(rng.uniform(0.0, 0.25))         # then kill at a random moment
        if p.poll() is not None:                   # finished before the kill: stop killing
            break
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        # a killed run never leaves results; one that wrote them (each file by rename) between
        # poll() and the kill finished first: the run is too short for KILLS kills
        assert not (out / "result.json").exists(), \
            "the run finished before this kill; make it longer"
        kills += 1
        blob = CheckpointFile(ckpt, run_key(Config.from_toml(CONFIG).to_dict())).load()
        state, why = decode_checkpoint(blob, Config.from_toml(CONFIG))
        assert why is None                         # the file on disk is always a valid one
        saves_seen.append(state.hops_so_far())
    assert kills >= 3, f"the run finished after {kills} kills; make it longer"
    assert saves_seen == sorted(saves_seen) and saves_seen[-1] > 0   # progress kept
    capsys.readouterr()
    assert main(argv) == 0                         # the same command, not killed: it resumes
    err = capsys.readouterr().err
    assert "resumed from" in err
    print(f"\n{kills} kills; engine hops in the checkpoint at each kill: {saves_seen}; "
          f"{err.strip()}")
    assert stripped(out / "result.json") == reference
    assert not ckpt.exists()                       # deleted once the results are written
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]   # no temporary files


def test_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_valid(tmp_path, reference,
                                                                             capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    ckpt = out / RUN_CHECKPOINT_NAME
    driver = tmp_path / "torn_writer.py"
    driver.write_text(TORN_WRITER)
    marker = tmp_path / "writing"
    argv = ["run", str(cfg), "--out", str(out), "--checkpoint-every", "0.05", "--quiet"]
    p = subprocess.Popen([sys.executable, str(driver), str(marker), *argv], cwd=tmp_path,
                         env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), p.stderr.read().decode() if p.poll() is not None else "timeout"
        time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)             # in the middle of the third checkpoint write
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
    tmp_name, full_size = marker.read_text().split("\n")
    torn = Path(tmp_name)
    assert torn.exists() and torn.stat().st_size == int(full_size) // 2  # the torn new one
    config = Config.from_toml(CONFIG)
    blob = CheckpointFile(ckpt, run_key(config.to_dict())).load()     # the previous one...
    state, why = decode_checkpoint(blob, config)
    assert why is None and state.hops_so_far() > 0                    # ...is complete and valid
    assert main(argv) == 0                         # resume: cleans the torn file, same result
    assert stripped(out / "result.json") == reference
    assert not torn.exists() and not ckpt.exists()
    assert not [q.name for q in out.iterdir() if q.name.startswith(".")]


def test_fresh_discards_the_checkpoint_and_checkpoints_off_leave_it_alone(tmp_path, reference,
                                                                          capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    out.mkdir()
    ckpt = out / RUN_CHECKPOINT_NAME
    ckpt.write_bytes(b"KMCCKPT1 torn")
    base = ["run", str(cfg), "--out", str(out), "--quiet"]
    assert main(base) == 2                                      # refuses to overwrite it
    assert "--fresh" in capsys.readouterr().err and ckpt.read_bytes() == b"KMCCKPT1 torn"
    assert main([*base, "--checkpoint-every", "0"]) == 0        # off: the file is not touched
    assert ckpt.read_bytes() == b"KMCCKPT1 torn"
    assert stripped(out / "result.json") == reference
    assert main([*base, "--fresh"]) == 0                        # discarded, run, deleted
    assert not ckpt.exists() and stripped(out / "result.json") == reference
