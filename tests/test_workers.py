"""Replicas advanced by several threads give bit for bit the result of one thread (each replica has
its own random stream; the engine is chunk-invariant), for plain, interacting, dopant-disordered and
converging runs, from Python, the CLI and a resumed checkpoint; ``workers`` is not part of a run's
identity."""
from __future__ import annotations

import json
import threading

import pytest

from kmc.campaign.store import TIMING_KEYS
from kmc.cli.main import main
from kmc.config import Config
from kmc.config.keys import run_key
from kmc.runs import replicas
from kmc.runs.runner import resolve_workers, run_config

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
    assert resolve_workers(16, config.run) == 5      # never more threads than replicas
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
