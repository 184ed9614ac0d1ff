"""Replicas advanced by several threads give bit for bit the result of one thread (each replica has
its own random stream; the engine is chunk-invariant), for plain, interacting, dopant-disordered and
converging runs, with the temperatures' work in the same passes, from Python, the CLI and a
resumed checkpoint; ``workers`` is not part of a run's identity."""
from __future__ import annotations

import json
import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from kmc.campaign.store import TIMING_KEYS
from kmc.cli.main import main
from kmc.config import Config
from kmc.config.keys import run_key
from kmc.runs import replicas, runner
from kmc.runs.runner import concurrent_temperatures, decode_checkpoint, resolve_workers, run_config

INTERACTING = {
    "lattice": {"builtin": "sc", "supercell": [6, 6, 6]},
    "occupancy": {"filling": 0.5},
    "model": {"barrier_eV": 0.25, "interactions_eV": {"mobile_mobile": [[1.01, 0.03]]}},
    "run": {"temperatures_K": [500.0, 700.0], "hops_per_ion": 40, "equilibration_hops_per_ion": 5,
            "replicas": 5, "seed": 7, "target_rel_err": 0.02, "max_hops_per_ion": 80},
}
DOPED = {
    "lattice": {"builtin": "llzo-cubic", "supercell": [1, 1, 1]},
    "dopants": {"Ga": {"site": "Li1", "per_formula_unit": 0.25, "charge": 3}},
    "run": {"temperatures_K": [600.0], "hops_per_ion": 20, "equilibration_hops_per_ion": 2,
            "replicas": 3, "seed": 3},
}


def numbers(result) -> dict:
    d = result.to_dict()
    d["results"] = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in d["results"]]
    d.pop("provenance", None)
    return d


@pytest.mark.parametrize("data", [INTERACTING, DOPED], ids=["interacting-converging", "ga-doped-llzo"])
def test_any_number_of_workers_gives_the_same_numbers(data, monkeypatch):
    monkeypatch.setattr(replicas, "SAFE_POINT_HOPS", 257)   # many passes: threads really interleave
    config = Config.from_dict(data)
    seen = set()
    real = replicas.ReplicaMeasurement.measure_step

    def spy(self, t):
        seen.add(threading.current_thread().name.split("_")[0])
        return real(self, t)
    monkeypatch.setattr(replicas.ReplicaMeasurement, "measure_step", spy)
    one = run_config(config, workers=1)
    assert seen == {"MainThread"}
    seen.clear()
    many = run_config(config, workers=3)
    assert "kmc-replica" in seen                      # the replicas really ran in the pool
    assert numbers(many) == numbers(one)
    assert one.provenance["workers"] == 1 and many.provenance["workers"] == 3


def test_workers_setting_resolution_and_identity():
    config = Config.from_dict({**INTERACTING, "run": {**INTERACTING["run"], "workers": 2}})
    assert config.run.workers == 2
    assert "workers" not in config.to_dict()["run"]   # not physics: not in run keys or stores
    assert run_key(config.to_dict()) == run_key(Config.from_dict(INTERACTING).to_dict())
    assert resolve_workers(None, config.run) == 2
    assert resolve_workers(16, config.run) == 10     # never more threads than replicas x T
    assert concurrent_temperatures(1, config.run) == 1
    assert concurrent_temperatures(3, config.run) == 2   # ceil(3 / 5) + 1
    three = Config.from_dict({**INTERACTING, "run": {**INTERACTING["run"],
                                                     "temperatures_K": [400.0, 500.0, 600.0]}})
    assert concurrent_temperatures(2, three.run) == 2
    assert concurrent_temperatures(7, three.run) == 3    # 7 threads need two T of 5, plus one
    assert resolve_workers(None, Config.from_dict(INTERACTING).run) >= 1


def test_cli_workers_flag_gives_the_same_result_json(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[lattice]\nbuiltin = "square"\nsupercell = [8, 8, 1]\n[occupancy]\nvacancies = 3\n'
                   '[model]\nbarrier_eV = 0.25\n[run]\ntemperatures_K = [600.0]\nhops_per_ion = 30\n'
                   'replicas = 4\nseed = 5\n')
    outs = []
    for n in ("1", "2"):
        out = tmp_path / f"out{n}"
        assert main(["run", str(cfg), "--out", str(out), "--workers", n, "--quiet"]) == 0
        d = json.loads((out / "result.json").read_text())
        d["results"] = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in d["results"]]
        d.pop("provenance")
        outs.append(d)
    assert outs[0] == outs[1]
    assert main(["run", str(cfg), "--workers", "0", "--quiet"]) == 2


MULTI_T = {
    "lattice": {"builtin": "sc", "supercell": [5, 5, 5]},
    "occupancy": {"filling": 0.4},
    "model": {"barrier_eV": 0.25, "interactions_eV": {"mobile_mobile": [[1.01, 0.04]]}},
    "run": {"temperatures_K": [450.0, 550.0, 650.0, 800.0], "hops_per_ion": 30,
            "equilibration_hops_per_ion": 4, "replicas": 3, "seed": 11, "target_rel_err": 0.03,
            "max_hops_per_ion": 120, "time_origins": 2},
}


def curves(result) -> list:
    return [{k: v for k, v in c.items() if k != "fit"} for c in result.msd]


def same_curves(a, b) -> bool:
    return all(ca.keys() == cb.keys() and all(np.array_equal(ca[k], cb[k]) for k in ca)
               for ca, cb in zip(curves(a), curves(b), strict=True))


def test_temperatures_share_the_passes_and_give_the_same_numbers(monkeypatch):
    """With 2 and 3 workers the passes hold the work of several temperatures at once (replica
    steps of two temperatures in one pass, run by the pool), and every number and MSD curve is
    the one-worker result bit for bit."""
    monkeypatch.setattr(replicas, "SAFE_POINT_HOPS", 97)
    config = Config.from_dict(MULTI_T)
    passes = [0]
    log = []
    real_pass, real_step = runner.run_pass, replicas.ReplicaMeasurement.measure_step

    def counting_pass(work, pool=None):
        passes[0] += 1
        return real_pass(work, pool)

    def spy(self, t):
        log.append((passes[0], self.sim.temperature_K, threading.current_thread().name))
        return real_step(self, t)
    monkeypatch.setattr(runner, "run_pass", counting_pass)
    monkeypatch.setattr(replicas.ReplicaMeasurement, "measure_step", spy)
    results = {}
    for n in (1, 2, 3):
        log.clear()
        results[n] = run_config(config, workers=n)
        temps_per_pass: dict[int, set] = {}
        for p, T, _ in log:
            temps_per_pass.setdefault(p, set()).add(T)
        widest = max(len(t) for t in temps_per_pass.values())
        if n == 1:
            assert widest == 1 and {name for *_, name in log} == {"MainThread"}
        else:
            assert widest >= 2                       # two temperatures advanced in one pass
            assert any(name.startswith("kmc-replica") for *_, name in log)
        assert results[n].provenance["workers"] == n
    for n in (2, 3):
        assert numbers(results[n]) == numbers(results[1])
        assert same_curves(results[n], results[1])
    assert [r["temperature_K"] for r in results[1].results] == MULTI_T["run"]["temperatures_K"]


def test_resume_with_temperatures_in_progress_under_any_worker_count(monkeypatch):
    """A checkpoint taken while several temperatures are in progress (some finished, some not)
    resumes with 1 or 2 workers to the uninterrupted result."""
    monkeypatch.setattr(replicas, "SAFE_POINT_HOPS", 97)
    config = Config.from_dict(MULTI_T)
    saved: list[bytes] = []
    ref = run_config(config, workers=3,
                     checkpoint=SimpleNamespace(interval_s=0.0, load=lambda: None, save=saved.append))
    mid = None
    for blob in saved:
        state, why = decode_checkpoint(blob, config)
        running = [st for st in state.temps if st is not None and st.reps]
        if why is None and len(running) >= 2 and state.t_index >= 1:
            mid = blob
            break
    assert mid is not None, "no checkpoint with a finished and two running temperatures"
    for n in (1, 2):
        res = run_config(config, workers=n,
                         checkpoint=SimpleNamespace(interval_s=math.inf, load=lambda: mid, save=saved.append))
        assert res.checkpoint_info["resumed"]
        assert numbers(res) == numbers(ref) and same_curves(res, ref)
