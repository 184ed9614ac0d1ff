"""Files written by earlier kmc versions (tests/data/compat, made by make_fixtures.py there with
the old code): what the current code does with each.

* a run checkpoint written just before the reorganisation into subpackages (2b77f77) resumes,
  and gives the result of an uninterrupted run of the current code: every count, flag and string
  exactly, every float to within a few units in the last place (the checkpoint's float
  accumulators were summed on the machine that wrote the fixture; numpy's SIMD reductions may
  round differently on another CPU, and CI once saw ``local_exponent`` differ in its 16th digit);
* a checkpoint from before ``[model] nonlinear_field`` existed (9f79379) belongs, by design, to
  another config (the run key hashes the full normalised config, defaults included): refused
  with one sentence and exit 2, the file kept; ``--fresh`` discards it and runs;
* a campaign store of schema 2 written before the reorganisation is served as it is (every row
  verified), and its run keys are the current ones: a resumed campaign runs nothing again;
* a store of schema 1 (the release 01991b4) is migrated in place on opening for writing; its rows
  verify, and its points (configs without the keys added since) are run again, as
  kmc.campaign.core documents for a release that adds config fields.

Old pickle checkpoints are refused unread (tests/test_plain_checkpoint.py).
"""
import gzip
import json
import sqlite3
from pathlib import Path

import pytest

from kmc.campaign.core import Campaign
from kmc.campaign.store import TIMING_KEYS, Store
from kmc.cli.main import main
from kmc.runs.checkpoint import RUN_CHECKPOINT_NAME

DATA = Path(__file__).parent / "data" / "compat"
RUN_TOML = DATA / "run.toml"


def unzip(name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(gzip.decompress((DATA / name).read_bytes()))
    return dest


def physics(out: Path) -> list[dict]:
    """The per-temperature results of DIR/result.json without the timing keys."""
    rows = json.loads((out / "result.json").read_text())["results"]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def assert_same_physics(got, want, where: str = "result") -> None:
    """Equal structure, exact non-floats, floats to rel 1e-12 (a few ulps; a real change is far larger)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_same_physics(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_physics(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, float) and got == pytest.approx(want, rel=1e-12, abs=0.0, nan_ok=True), where
    else:
        assert type(got) is type(want) and got == want, where


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("fresh") / "out"
    assert main(["run", str(RUN_TOML), "--out", str(out), "--quiet"]) == 0
    return physics(out)


def test_checkpoint_from_before_the_reorganisation_resumes_to_the_same_result(
        tmp_path, uninterrupted, capsys):
    out = tmp_path / "out"
    ckpt = unzip("run_2b77f77.ckpt.gz", out / RUN_CHECKPOINT_NAME)
    assert main(["run", str(RUN_TOML), "--out", str(out)]) == 0
    assert "engine hops were reused" in capsys.readouterr().err   # it did resume
    assert not ckpt.exists()                               # deleted once the results are written
    assert_same_physics(physics(out), uninterrupted)


def test_checkpoint_of_a_config_without_a_later_key_is_refused_then_fresh_runs(
        tmp_path, uninterrupted, capsys):
    out = tmp_path / "out"
    ckpt = unzip("run_9f79379.ckpt.gz", out / RUN_CHECKPOINT_NAME)
    before = ckpt.read_bytes()
    assert main(["run", str(RUN_TOML), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another config" in err and "--fresh" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert ckpt.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["run.ckpt"]
    assert main(["run", str(RUN_TOML), "--out", str(out), "--quiet", "--fresh"]) == 0
    assert physics(out) == uninterrupted


def stored_keys(directory: Path) -> set[str]:
    with Store(directory, readonly=True) as st:
        assert st.verify() == {}                            # every row's key and checksum hold
        rows = st.rows()
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 2
    return {r["key"] for r in rows}


def user_version(directory: Path) -> int:
    con = sqlite3.connect(directory / "store.sqlite")
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def test_store_from_before_the_reorganisation_is_served_and_resumed(tmp_path):
    camp = tmp_path / "camp"
    unzip("store_schema2_2b77f77.sqlite.gz", camp / "store.sqlite")
    assert user_version(camp) == 2
    c = Campaign.from_file(DATA / "campaign.toml", out=camp)
    assert stored_keys(camp) == {p.key for p in c.points}   # the current run keys
    # append: the stored spec names the campaign file where it was made (another directory)
    report = c.run(workers=1, export=False, append=True)
    assert (report.executed, report.skipped) == (0, 2)


def test_store_of_schema_1_is_migrated_and_its_points_run_again(tmp_path):
    camp = tmp_path / "camp"
    unzip("store_schema1_01991b4.sqlite.gz", camp / "store.sqlite")
    assert user_version(camp) == 1
    with Store(camp) as st:                                  # opening for writing migrates
        assert st.bad_rows == {} and len(st.done_keys()) == 2
    assert user_version(camp) == 2
    old = stored_keys(camp)
    c = Campaign.from_file(DATA / "campaign.toml", out=camp)
    assert not old & {p.key for p in c.points}              # configs have gained keys since
    report = c.run(workers=1, export=False, append=True)
    assert (report.executed, report.skipped) == (2, 0)
    with Store(camp, readonly=True) as st:
        assert len(st.rows()) == 4 and st.verify() == {}     # the old rows stay, verified
