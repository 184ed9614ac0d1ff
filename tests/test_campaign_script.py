"""Campaigns started from a plain Python script: without `if __name__ == "__main__":` the runs
still happen (one after another, with a warning that says how to get the workers back), and a
campaign never returns normally with crashed runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kmc.campaign.executors as campaign_mod  # where the workers' execute_point lives
from kmc.campaign.core import Campaign
from kmc.campaign.executors import unguarded_main_script
from kmc.campaign.store import Store
from kmc.cli.main import main
from kmc.exceptions import CampaignError

CAMPAIGN = """
[base.lattice]
builtin = "sc"
supercell = [4, 4, 4]
[base.occupancy]
filling = 0.5
[base.run]
hops_per_ion = 10
equilibration_hops_per_ion = 2
replicas = 2
temperatures_K = [500.0]
seed = 3
[grid]
"occupancy.filling" = [0.25, 0.5, 0.75]
"""


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "scan.toml").write_text(CAMPAIGN)
    script = tmp_path / "scan.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def stored_statuses(out: Path) -> list[str]:
    with Store(out, readonly=True) as st:
        return sorted(r["status"] for r in st.rows())


def test_script_without_main_guard_runs_every_point(tmp_path):
    proc = run_script(tmp_path, """
        from kmc.campaign.core import Campaign

        report = Campaign.from_file("scan.toml", out="scan.campaign").run(workers=2)
        print("executed", report.executed, "crashed", len(report.crashed))
    """)
    assert proc.returncode == 0, proc.stderr
    assert "executed 3 crashed 0" in proc.stdout
    # one warning that names the fix; no child ever reached the store's lock
    assert 'if __name__ == "__main__":' in proc.stderr and "2 workers" in proc.stderr
    assert "another kmc campaign" not in proc.stderr and "Traceback" not in proc.stderr
    assert stored_statuses(tmp_path / "scan.campaign") == ["ok"] * 3


def test_guarded_script_still_uses_worker_processes(tmp_path):
    proc = run_script(tmp_path, """
        import os
        from kmc.campaign.core import Campaign
        from kmc.campaign.executors import PointTask

        class Where(PointTask):                      # report which process ran each point
            def __call__(self, config_json):
                out = super().__call__(config_json)
                out["elapsed_s"] = os.getpid()
                return out

        def main():
            c = Campaign.from_file("scan.toml", out="scan.campaign")
            report = c.run(workers=2, checkpoint_every=0)
            return report

        if __name__ == "__main__":
            import kmc.campaign.core as cm
            cm.PointTask = Where
            report = main()
            print("executed", report.executed)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "executed 3" in proc.stdout and "RuntimeWarning" not in proc.stderr
    with Store(tmp_path / "scan.campaign", readonly=True) as st:
        pids = {r["elapsed_s"] for r in st.rows()}
    assert os.getpid() not in pids and len(pids) >= 1   # ran in worker processes


def test_unguarded_detection_reads_the_main_guard(tmp_path):
    # the check itself, in a fresh interpreter: top level (unguarded), inside the guard, and
    # inside a function called from the guard
    proc = run_script(tmp_path, """
        from kmc.campaign.executors import unguarded_main_script

        print("top", unguarded_main_script() is not None)

        def f():
            return unguarded_main_script() is not None

        if __name__ == "__main__":
            print("guard", unguarded_main_script() is not None, f())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["top", "True", "guard", "False", "False"]
    assert unguarded_main_script() is None          # under pytest: no unguarded caller


def test_crashed_runs_raise_and_the_cli_exits_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "scan.toml").write_text(CAMPAIGN)
    real = campaign_mod.execute_point

    def flaky(config_json, **kw):
        if json.loads(config_json)["occupancy"]["filling"] == 0.5:
            raise MemoryError("worker ran out of memory")
        return real(config_json, **kw)
    monkeypatch.setattr(campaign_mod, "execute_point", flaky)
    c = Campaign.from_file(tmp_path / "scan.toml", out=tmp_path / "a")
    with pytest.raises(CampaignError, match=r"1 of the 3 runs .*point 2: MemoryError: worker "
                                            r"ran out of memory.*run the campaign again"):
        c.run(workers=1)
    assert stored_statuses(tmp_path / "a") == ["ok", "ok"]        # the others are kept
    capsys.readouterr()
    assert main(["campaign", str(tmp_path / "scan.toml"), "--out", str(tmp_path / "b"),
                 "--workers", "1", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "crashed and were not stored" in captured.err and "Traceback" not in captured.err
    assert "1 crashed and will be retried" in captured.out


def test_a_worker_reimporting_the_script_refuses_to_start_the_campaign(tmp_path):
    # what a spawned worker does with an unguarded script whose caller the parent could not
    # see: run it as __mp_main__; the campaign then stops before touching the store's lock
    import runpy

    from kmc.exceptions import ConfigError

    (tmp_path / "scan.toml").write_text(CAMPAIGN)
    script = tmp_path / "scan.py"
    script.write_text("from kmc.campaign.core import Campaign\n"
                      f"Campaign.from_file({str(tmp_path / 'scan.toml')!r}, "
                      f"out={str(tmp_path / 'out')!r}).run(workers=2)\n")
    with pytest.raises(ConfigError, match="re-imported the main script.*__name__"):
        runpy.run_path(str(script), run_name="__mp_main__")
    assert not (tmp_path / "out").exists()
