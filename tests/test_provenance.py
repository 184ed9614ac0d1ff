"""Provenance in result.json and in campaign rows: kmc version, the model data actually used
(file name + sha256, or the structure itself), the full config and its hash, seed, estimator
settings and platform. Hashes are recomputed here from the files, independently of kmc."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

import kmc
from kmc.campaign.core import Campaign
from kmc.campaign.executors import execute_point
from kmc.cli.main import main
from kmc.config import Config, RunConfig
from kmc.runs.provenance import NOT_ESTIMATOR, run_provenance
from kmc.runs.system import build_system

ROOT = Path(__file__).resolve().parents[1]
LI3N = Path(__file__).parent / "data" / "Li3N.cif"
SMALL = {"lattice": {"builtin": "sc", "supercell": [4, 4, 4]}, "occupancy": {"vacancies": 1},
         "run": {"hops_per_ion": 5, "equilibration_hops_per_ion": 1, "replicas": 2, "seed": 17,
                 "time_origins": 1}}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_result_json_carries_provenance(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[lattice]\nbuiltin = "sc"\nsupercell = [4, 4, 4]\n[occupancy]\nvacancies = 1\n'
                   '[run]\nhops_per_ion = 5\nequilibration_hops_per_ion = 1\nreplicas = 2\n'
                   'seed = 17\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    data = json.loads((tmp_path / "o" / "result.json").read_text())
    p = data["provenance"]
    assert p["kmc_version"] == kmc.__version__ == data["version"]       # old keys stay
    assert p["config"] == data["config"] and p["seed"] == 17
    canonical = json.dumps(data["config"], sort_keys=True, separators=(",", ":"))
    assert p["config_sha256"] == sha(canonical.encode())
    assert p["model_source"] == {"kind": "teaching", "name": "sc"}
    assert p["estimator"]["replicas"] == 2 and p["estimator"]["time_origins"] == 1
    assert p["estimator"]["hops_per_ion"] == 5.0
    # every [run] field is either an estimator setting or named as not one (a new field cannot
    # be forgotten); the old keys stay
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(p["estimator"]) == (names - set(NOT_ESTIMATOR)) | {"estimator", "error"}
    assert {"msd_frames", "target_rel_err", "max_hops_per_ion", "converge_on", "arrhenius_basis",
            "equilibration_hops_per_ion", "fresh_final_round"} <= set(p["estimator"])
    assert p["platform"]["python"] == platform.python_version()
    assert p["platform"]["packages"]["numpy"] == np.__version__
    assert p["platform"]["os"] == platform.system()


def test_model_source_of_a_cif_and_a_framework_is_the_file_read():
    cif = Config.from_dict({"lattice": {"cif": str(LI3N), "supercell": [2, 2, 2]},
                            "model": {"barrier_eV": 0.3}})
    src = run_provenance(cif, build_system(cif))["model_source"]
    assert src == {"kind": "cif", "name": "Li3N.cif", "file": "Li3N.cif",
                   "sha256": sha(LI3N.read_bytes())}
    fw = Config.from_dict({"lattice": {"builtin": "llzo-cubic", "supercell": [1, 1, 1]}})
    src = run_provenance(fw, build_system(fw))["model_source"]
    assert src["file"] == "llzo_cubic.toml"
    assert src["sha256"] == sha((resources.files("kmc.system.structures") / "llzo_cubic.toml").read_bytes())
    # a builtin made of others (llzo-tetragonal: llzo-cubic's model, t-LLZO's experiment, a start
    # structure) records every file it read
    tet = Config.from_dict({"lattice": {"builtin": "llzo-tetragonal", "supercell": [1, 1, 1]}})
    src = run_provenance(tet, build_system(tet))["model_source"]
    here = resources.files("kmc.system.structures")
    assert src["file"] == "llzo_tetragonal.toml"
    assert src["based_on"]["model"] == {"name": "llzo-cubic", "file": "llzo_cubic.toml",
                                        "sha256": sha((here / "llzo_cubic.toml").read_bytes())}
    assert src["based_on"]["experiment"]["file"] == "llzo_tetragonal_latticegas.toml"
    assert src["start_structure"] == {"file": "llzo_tetragonal_Li56.vasp",
                                      "sha256": sha((here / "llzo_tetragonal_Li56.vasp").read_bytes())}


def test_a_structure_in_memory_is_recorded_itself():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = Structure.from_file(str(LI3N))
    system = kmc.System.from_structure(st, supercell=[2, 2, 2], barrier_eV=0.3)
    src = run_provenance(system.config, system.build())["model_source"]
    assert src["kind"] == "structure" and src["sha256"] == sha(src["cif"].encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = Structure.from_str(src["cif"], fmt="cif")
    assert StructureMatcher().fit(back, st) and back.composition == st.composition


def test_campaign_rows_carry_provenance(tmp_path):
    c = Campaign.from_dict({"base": SMALL, "grid": {"occupancy.vacancies": [1, 2]}},
                           out=tmp_path / "out")
    row = execute_point(c.points[0].config_json)
    p = json.loads(row["result_json"])["provenance"]
    assert p["config_sha256"] == c.points[0].key       # the campaign's run key, same hash
    assert p["seed"] == c.points[0].seed and p["kmc_version"] == row["version"]
