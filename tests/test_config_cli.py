"""Config validation and the `kmc run` contract (JSON keys, exit codes, reproducibility)."""
import json

import pytest

from kmc.cli.main import main
from kmc.config import Config
from kmc.exceptions import ConfigError

SMALL = """
[lattice]
builtin = "sc"
supercell = [6, 6, 6]

[occupancy]
filling = 0.5

[model]
attempt_frequency_THz = 10.0
barrier_eV = 0.25

[run]
temperatures_K = [500.0, 700.0]
hops_per_ion = 20
equilibration_hops_per_ion = 2
replicas = 3
seed = 42
"""

REQUIRED = ["temperature_K", "D_tracer_cm2_s", "D_tracer_err_cm2_s", "D_jump_cm2_s",
            "D_jump_err_cm2_s", "haven_ratio", "correlation_factor", "correlation_factor_err",
            "sigma_S_cm", "sigma_err_S_cm", "hops", "wall_s", "hops_per_s",
            "D_tracer_xx_cm2_s", "D_tracer_yy_cm2_s", "D_tracer_zz_cm2_s", "D_jump_xx_cm2_s",
            "D_jump_yy_cm2_s", "D_jump_zz_cm2_s", "dimensionality"]


def run_json(tmp_path, capsys, text=SMALL, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    code = main(["run", str(path), "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_contract(tmp_path, capsys):
    code, out, _ = run_json(tmp_path, capsys)
    assert code == 0
    data = json.loads(out)  # exactly one JSON object
    assert data["version"] and data["config"]["lattice"]["builtin"] == "sc"
    assert [r["temperature_K"] for r in data["results"]] == [500.0, 700.0]
    for r in data["results"]:
        assert set(REQUIRED) <= set(r)
        assert r["dimensionality"] == 3 and r["hops"] > 0 and r["D_tracer_cm2_s"] > 0
    # the hotter run diffuses faster
    assert data["results"][1]["D_tracer_cm2_s"] > data["results"][0]["D_tracer_cm2_s"]


def test_same_seed_same_json_and_other_seed_differs(tmp_path, capsys):
    def strip(text):
        d = json.loads(text)
        for r in d["results"]:
            del r["wall_s"], r["hops_per_s"]
        return d
    a = strip(run_json(tmp_path, capsys)[1])
    b = strip(run_json(tmp_path, capsys)[1])
    c = strip(run_json(tmp_path, capsys, SMALL.replace("seed = 42", "seed = 43"))[1])
    assert a == b
    assert a != c


def test_out_dir_gets_result_json(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL)
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert len(data["results"]) == 2
    assert "D* (cm2/s)" in capsys.readouterr().out


@pytest.mark.parametrize("json_out", [False, True])
def test_not_diffusive_warning_on_stderr_only(tmp_path, capsys, json_out):
    """2 hops per ion on the half-filled sc gas are not diffusive: `kmc run` says so on stderr
    (``kmc: warning:``), never in the table or JSON on stdout, which users redirect into files;
    the result itself carries the flag."""
    short = SMALL.replace("hops_per_ion = 20", "hops_per_ion = 2")
    cfg = tmp_path / "c.toml"
    cfg.write_text(short)
    assert main(["run", str(cfg), *(["--json"] if json_out else [])]) == 0
    out, err = capsys.readouterr()
    warn = [ln for ln in err.splitlines() if "not in the diffusive regime" in ln]
    assert warn and all(ln.startswith("kmc: warning: ") for ln in warn)
    assert "warning" not in out and "not in the diffusive regime" not in out
    if json_out:
        assert not any(r["diffusive"] for r in json.loads(out)["results"])
    cfg.write_text(SMALL.replace("hops_per_ion = 20", "hops_per_ion = 200"))
    assert main(["run", str(cfg), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "diffusive regime" not in err and all(r["diffusive"] for r in json.loads(out)["results"])


@pytest.mark.parametrize("text,needle", [
    ("[lattice\nbuiltin='sc'", "not valid TOML"),
    (SMALL.replace("supercell", "supercel"), "did you mean 'supercell'"),
    (SMALL.replace('builtin = "sc"', 'builtin = "scc"'), "not known"),
    (SMALL.replace("[500.0, 700.0]", "[0.0]"), "greater than zero"),
    (SMALL.replace("[500.0, 700.0]", "[-5.0]"), "greater than zero"),
    (SMALL.replace("[500.0, 700.0]", "[]"), "is empty"),
    (SMALL.replace("[500.0, 700.0]", "[nan]"), "finite"),
    (SMALL.replace("filling = 0.5", "filling = 1.5"), "between 0 and 1"),
    (SMALL.replace("filling = 0.5", "ions = 1000"), "ions on 216 sites"),
    (SMALL.replace("filling = 0.5", "filling = 0.5\nions = 3"), "exactly one of"),
    (SMALL.replace("[6, 6, 6]", "[6, 0, 6]"), "greater than zero"),
    (SMALL.replace("[6, 6, 6]", "[6, 6]"), "three integers"),
    (SMALL.replace("replicas = 3", "replicas = 2.5"), "whole number"),
    (SMALL.replace("barrier_eV = 0.25", 'barrier_eV = "high"'), "must be a number"),
    (SMALL.replace("barrier_eV = 0.25", "barrier_eV = { nope = 0.3 }"), "not a class"),
    (SMALL.replace("[model]", "[model]\nhop_cutoff_A = 0.5"), "unknown key 'hop_cutoff_A'"),
    (SMALL.replace("[lattice]", "[lattice]\nhop_cutoff_A = 0.5"), "raise hop_cutoff_A"),
    (SMALL + "\n[extra]\nx = 1\n", "unknown key 'extra'"),
    (SMALL.replace("[lattice]", "[lattice]\nsite_labels = ['A', 'B']"), "needs 1 labels"),
])
def test_bad_config_one_sentence_exit_2(tmp_path, capsys, text, needle):
    code, out, err = run_json(tmp_path, capsys, text)
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err and out == ""
    assert err.count("\n") == 1  # one line


def test_missing_file_and_unwritable_out(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no config file" in capsys.readouterr().err
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", str(cfg), "--out", str(blocker / "sub")]) == 2
    assert "output directory" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert main(["run"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_bundled_example_resolves():
    from kmc.config import config_file as resolve_config

    assert resolve_config("quickstart").name == "quickstart.toml"
    with pytest.raises(ConfigError, match="bundled examples: .*quickstart"):
        resolve_config("no-such-example")


def test_config_round_trip():
    cfg = Config.from_toml(SMALL)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_a_framework_file_is_shown_by_info_and_named_by_run(tmp_path, capsys):
    """A framework (model) file such as ``kmc parametrize`` writes: ``kmc info FILE`` shows it like
    a builtin (flags apply), ``kmc run FILE`` says in one sentence how to run it (exit 2)."""
    from importlib.resources import files

    model = tmp_path / "model.toml"
    model.write_text((files("kmc.system.structures") / "llzo_cubic.toml").read_text())
    assert main(["info", str(model), "--supercell", "1", "1", "1", "--dopant", "Ga:Li1:0.25"]) == 0
    out = capsys.readouterr().out
    assert "Li6.25Ga0.25La3Zr2O12" in out and "computed with chgnet" in out
    assert main(["run", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a framework (model) file, not a run config" in err[0]
    assert f'framework_file = "{model}"' in err[0]
