"""The Python API (kmc.System, kmc.run): configs and bundled names, structures from pymatgen, ASE
and files, results equal to the CLI's result.json, and one-sentence errors."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from importlib import resources
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

import kmc
from kmc.campaign.store import strip_timing
from kmc.cli.main import main
from kmc.config import Config
from kmc.exceptions import ConfigError, ResultWarning, StructureError

LI3N = Path(__file__).parent / "data" / "Li3N.cif"
EXAMPLES = Path(str(resources.files("kmc.examples")))  # the installed package's bundled examples

SMALL = """
[lattice]
builtin = "sc"
supercell = [5, 5, 5]
lattice_constant_A = 2.5
[occupancy]
filling = 0.5
[model]
barrier_eV = 0.25
[run]
temperatures_K = [500.0, 700.0]
hops_per_ion = 20
equilibration_hops_per_ion = 2
replicas = 3
seed = 9
"""


def plain(d: dict) -> dict:
    """As written to JSON and read back (tuples become lists), timing keys dropped."""
    return strip_timing(json.loads(json.dumps(d)))


def read(path: Path) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(str(path))


def test_import_kmc_stays_lazy():
    code = "import sys, kmc; print('kmc.api' in sys.modules, 'kmc.runs.runner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    assert kmc.System.__module__ == "kmc.api" and kmc.run.__module__ == "kmc.api"


def test_from_config_takes_names_paths_dicts_and_configs(tmp_path):
    quick = Config.from_file(EXAMPLES / "quickstart.toml")
    assert kmc.System.from_config("quickstart").config == quick      # a bundled example
    assert Config.from_file("quickstart") == quick                   # Config.from_file too
    assert kmc.System.from_config(EXAMPLES / "quickstart.toml").config == quick
    assert kmc.System.from_config(quick.to_dict()).config == quick
    assert kmc.System.from_config(quick).config is quick
    llzo = kmc.System.from_config("llzo-cubic").config                 # a framework name
    assert llzo == Config.from_dict({"lattice": {"builtin": "llzo-cubic"}})
    assert Config.from_file("llzo-cubic") == llzo
    with pytest.raises(ConfigError, match=r"no config file at 'llzo-cubc'.*quickstart.*"
                                          r"llzo-cubic"):
        kmc.System.from_config("llzo-cubc")
    with pytest.raises(ConfigError, match="cannot make a config from a list"):
        kmc.System.from_config([1, 2])


@pytest.mark.filterwarnings("ignore::kmc.exceptions.ResultWarning")  # short runs on purpose
def test_run_equals_the_cli_result_json(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    on_disk = json.loads((tmp_path / "out" / "result.json").read_text())
    result = kmc.run(kmc.System.from_config(path))
    assert plain(result.to_dict()) == strip_timing(on_disk)
    df = result.to_dataframe()
    assert df["temperature_K"].tolist() == [500.0, 700.0]
    assert df["D_tracer_cm2_s"].tolist() == [r["D_tracer_cm2_s"] for r in on_disk["results"]]


@pytest.mark.filterwarnings("ignore::kmc.exceptions.ResultWarning")  # short runs on purpose
def test_run_overrides_are_validated_and_deterministic(tmp_path):
    system = kmc.System.from_config(Config.from_toml(SMALL))
    a = kmc.run(system, temperatures_K=600, hops_per_ion=10, replicas=2, seed=4)
    b = kmc.run(system, temperatures_K=[600.0], hops_per_ion=10, replicas=2, seed=4)
    c = kmc.run(system, temperatures_K=600, hops_per_ion=10, replicas=2, seed=5)
    assert a.config.run.temperatures_K == (600.0,) and a.config.run.seed == 4
    assert plain(a.to_dict()) == plain(b.to_dict())                # same config + seed
    assert plain(a.to_dict())["results"] != plain(c.to_dict())["results"]
    assert system.config.run.seed == 9                             # the system is unchanged
    with pytest.raises(ConfigError, match=r"\[run\] replicas must be greater than zero"):
        kmc.run(system, replicas=0)
    with pytest.raises(ConfigError, match=r"\[run\] temperatures_K must be greater than zero"):
        kmc.run(system, temperatures_K=[-5])
    with pytest.raises(ConfigError, match="workers must be a whole number of at least 1"):
        kmc.run(system, workers=0)


def test_run_emits_the_result_warnings_as_python_warnings():
    """What `kmc run` prints on stderr reaches a script as ResultWarning (10 hops per ion of this
    system are not diffusive; one replica has no error bars); a clean run warns nothing."""
    system = kmc.System.from_config(Config.from_toml(SMALL))
    with pytest.warns(ResultWarning) as caught:
        short = kmc.run(system, temperatures_K=600, hops_per_ion=10, replicas=1, seed=4)
    assert short.warnings and [str(w.message) for w in caught] == short.warnings
    assert any("not in the diffusive regime" in m for m in short.warnings)
    assert any("one replica" in m for m in short.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultWarning)
        long_ = kmc.run(system, temperatures_K=600, hops_per_ion=200, replicas=4, seed=4)
    assert long_.warnings == []


@pytest.mark.filterwarnings("ignore::kmc.exceptions.ResultWarning")  # short runs on purpose
def test_structure_file_pymatgen_and_ase_give_the_same_system():
    from pymatgen.io.ase import AseAtomsAdaptor

    kw = dict(vacancies=1, supercell=[3, 3, 3], barrier_eV=0.3)
    from_file = kmc.System.from_structure(LI3N, **kw)
    from_pmg = kmc.System.from_structure(read(LI3N), **kw)
    from_ase = kmc.System.from_structure(AseAtomsAdaptor.get_atoms(read(LI3N)), **kw)
    for s in (from_file, from_pmg, from_ase):
        assert s.formula == "Li2.963N" and s.n_ions == 3 * 27 - 1
        assert s.network.dimensionality == 3
    assert from_file.network.class_names == from_pmg.network.class_names == ["Li1", "Li2"]
    assert from_pmg.config.lattice.cif == "<structure Li3N>"
    # a structure in memory runs exactly as the file it was read from
    r_file = kmc.run(from_file, temperatures_K=[600], hops_per_ion=5, replicas=2, seed=3)
    r_pmg = kmc.run(from_pmg, temperatures_K=[600], hops_per_ion=5, replicas=2, seed=3)
    assert plain(r_file.to_dict())["results"] == plain(r_pmg.to_dict())["results"]
    assert r_pmg.formula == "Li2.963N"


def test_from_structure_takes_the_model_and_occupancy_keys():
    s = kmc.System.from_structure(read(LI3N), filling=0.5, supercell=[2, 2, 2],
                                  model={"barrier_eV": {"Li1-Li2@2.86": 0.4, "default": 0.2},
                                         "attempt_frequency_THz": 5.0})
    m = s.build().model
    assert s.n_ions == 12
    assert dict(zip(s.network.hop_class_names, m.kra_class.tolist())) == {
        "Li2-Li2@2.11": 0.2, "Li1-Li2@2.86": 0.4}
    assert m.nu_class.tolist() == [5e12, 5e12]


@pytest.mark.parametrize("call,error,match", [
    (lambda: kmc.System.from_structure(Structure(Lattice.cubic(5.6), ["Na", "Cl"],
                                                 [[0, 0, 0], [0.5, 0.5, 0.5]]), barrier_eV=0.3),
     StructureError, "the structure NaCl contains no Li .*pass mobile="),
    (lambda: kmc.System.from_structure([1, 2, 3]), StructureError,
     "cannot read a structure from a list; pass a pymatgen Structure, an ASE Atoms"),
    (lambda: kmc.System.from_structure(LI3N, barrier_eV=0.3, model={"barrier_eV": 0.2}),
     ConfigError, "barrier_eV is given both as an argument and in model"),
    (lambda: kmc.System.from_structure(LI3N, barrier_eV=0.3, vacancies=1, filling=0.5),
     ConfigError, r"\[occupancy\] needs exactly one of"),
    (lambda: kmc.System.from_structure(LI3N, barrier_eV=0.3, hop_cutoff_A=-1),
     ConfigError, r"\[lattice\] hop_cutoff_A must be greater than zero"),
    (lambda: kmc.System.from_structure(LI3N).build(), ConfigError, "a CIF brings no barriers"),
    (lambda: kmc.System.from_structure(read(LI3N), barrier_eV=0.3, mobile="Na"),
     StructureError, "contains no Na"),
])
def test_bad_api_input_is_one_sentence(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    text = str(info.value)
    assert text.endswith(".") and "\n" not in text
