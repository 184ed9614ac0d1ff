"""Catalogue of bad inputs (issue 7, "Hardening"): every one gives exit code 2 and exactly one line
``kmc: error: <sentence>`` on stderr that names the problem and the fix, never a traceback, and
leaves no partial output behind (an existing ``--out`` directory is untouched, a new one is not
created).

Each case drives the real command line (:func:`kmc.cli.main.main`) in-process; two of them also run
through ``python -m kmc.cli.main`` and the ``kmc`` console script.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from kmc.cli.main import main
from kmc.config import Config
from kmc.config.keys import run_key
from kmc.runs.checkpoint import RUN_CHECKPOINT_NAME, CheckpointFile
from kmc.runs.runner import RunState, encode_checkpoint

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
temperatures_K = [500.0]
hops_per_ion = 5
equilibration_hops_per_ion = 1
replicas = 2
seed = 42
"""
LLZO = """\
[lattice]
builtin = "llzo-cubic"
supercell = [1, 1, 1]

[run]
temperatures_K = [600.0]
hops_per_ion = 2
equilibration_hops_per_ion = 1
replicas = 2
"""
CIF_HEAD = """\
data_test
_cell_length_a 6.0
_cell_length_b 6.0
_cell_length_c 6.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
_symmetry_Int_Tables_number 1
loop_
_symmetry_equiv_pos_as_xyz
 'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
"""
CIFS = {
    "nacl.cif": CIF_HEAD + "Na1 Na 0 0 0 1\nCl1 Cl 0.5 0.5 0.5 1\n",
    # two Li 1.2 Å apart, 4.8 Å from the next pair: hops inside the pair only
    "dimer.cif": CIF_HEAD + "Li1 Li 0 0 0 1\nLi2 Li 0.2 0 0 0.5\nO1 O 0.5 0.5 0.5 1\n",
    "bad.cif": "data_x\n_cell_length_a 5\nthis is not a cif\n",
}
PREVIOUS = {"result.json": b'{"previous": "good result"}\n', "results.csv": b"T,D\n500,1e-9\n"}


def sub(old: str, new: str, base: str = SMALL) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def cif_config(name: str, extra: str = "") -> str:
    return (f'[lattice]\ncif = "{name}"\nsupercell = [2, 2, 2]\n{extra}[model]\nbarrier_eV = 0.3\n'
            f'[run]\ntemperatures_K = [600.0]\nhops_per_ion = 2\nreplicas = 2\n')


@dataclass
class Case:
    """One bad input: the argv (built in a scratch directory), the problem's key phrase and the
    fix's key phrase, both expected in the one-line message."""

    argv: Callable[[Path], list[str]]
    problem: str
    fix: str
    out: bool = True          # a `kmc run ... --out DIR` whose DIR must stay untouched


def run(text: str | bytes, *extra: str, name: str = "c.toml") -> Callable[[Path], list[str]]:
    """``kmc run <config> --out <tmp>/out --quiet`` for a config text (or raw bytes)."""
    def argv(tmp: Path) -> list[str]:
        p = tmp / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["run", str(p), "--out", str(tmp / "out"), "--quiet", *extra]
    return argv


def ckpt_run(kind: str) -> Callable[[Path], list[str]]:
    """``kmc run`` on SMALL with a checkpoint in DIR that is truncated, corrupt, or another
    config's."""
    def argv(tmp: Path) -> list[str]:
        args = run(SMALL)(tmp)
        config = Config.from_toml(SMALL)
        other = Config.from_toml(sub("seed = 42", "seed = 43"))
        owner = other if kind == "other" else config
        (tmp / "out").mkdir(exist_ok=True)
        f = CheckpointFile(tmp / "out" / RUN_CHECKPOINT_NAME, run_key(owner.to_dict()))
        f.save(encode_checkpoint(owner, RunState()))
        data = f.path.read_bytes()
        if kind == "truncated":
            f.path.write_bytes(data[: len(data) - 7])
        elif kind == "torn header":
            f.path.write_bytes(data[:20])
        elif kind == "garbage":
            f.path.write_bytes(b"not a checkpoint at all")
        return args
    return argv


def cli(*args: str) -> Callable[[Path], list[str]]:
    """Any argv; ``{tmp}`` is replaced by the scratch directory."""
    return lambda tmp: [a.replace("{tmp}", str(tmp)) for a in args]


def campaign(body: str | bytes) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        (tmp / "base.toml").write_text(SMALL)
        p = tmp / "camp.toml"
        p.write_bytes(body if isinstance(body, bytes) else body.encode())
        return ["campaign", str(p), "--out", str(tmp / "cout"), "--workers", "1", "--quiet"]
    return argv


CASES: dict[str, Case] = {
    # ---- malformed files
    "malformed TOML": Case(run("[lattice\nbuiltin = 'sc'\n"), "not valid TOML", "fix the syntax"),
    "config not UTF-8": Case(run(b"\xff\xfe[lattice]\n"), "not UTF-8", "save it as a UTF-8"),
    "empty config": Case(run(""), "no [occupancy] table", "add one with vacancies"),
    # ---- unknown / misspelled keys at every level (closest valid key suggested)
    "misspelled section": Case(run(SMALL + "\n[occupncy]\n"), "unknown key 'occupncy'",
                               "did you mean 'occupancy'?"),
    "misspelled [lattice] key": Case(run(sub("supercell", "supercel")), "unknown key 'supercel'",
                                     "did you mean 'supercell'?"),
    "misspelled [occupancy] key": Case(run(sub("filling", "fillng")), "unknown key 'fillng'",
                                       "did you mean 'filling'?"),
    "misspelled [model] key": Case(run(sub("barrier_eV", "barier_eV")), "unknown key 'barier_eV'",
                                   "did you mean 'barrier_eV'?"),
    "misspelled [run] key": Case(run(sub("replicas", "replica")), "unknown key 'replica'",
                                 "did you mean 'replicas'?"),
    "misspelled interactions key": Case(
        run(SMALL + "\n[model.interactions_eV]\nmobile_mobil = [[1.01, 0.1]]\n"),
        "unknown key 'mobile_mobil'", "did you mean 'mobile_mobile'?"),
    "misspelled interstitialcy key": Case(
        run(SMALL + "\n[model.interstitialcy]\ninterstital = ['A']\n"),
        "unknown key 'interstital'", "did you mean 'interstitial'?"),
    "misspelled dopant key": Case(
        run(LLZO + '[dopants]\nTa = { sit = "Zr", per_formula_unit = 0.5 }\n'),
        "unknown key 'sit'", "did you mean 'site'?"),
    "unknown builtin": Case(run(sub('builtin = "sc"', 'builtin = "llzo-cubc"')), "is not known",
                            "did you mean 'llzo-cubic'?"),
    # ---- wrong types
    "string temperature": Case(run(sub("[500.0]", '["hot"]')), "must be a number", "no quotes"),
    "supercell as string": Case(run(sub("[4, 4, 4]", '"4x4x4"')), "list of three integers",
                                "e.g. [8, 8, 8]"),
    "fractional replicas": Case(run(sub("replicas = 2", "replicas = 2.5")), "whole number",
                                "round it"),
    "boolean as string": Case(run(sub("seed = 42", "seed = 42\ncheck_rates = 'yes'")),
                              "check_rates must be true or false", "true or false"),
    "section that is a number": Case(run("lattice = 3\n[occupancy]\nfilling = 0.5\n"),
                                     "[lattice] must be a table", "section"),
    # ---- out-of-range numbers
    "zero temperature": Case(run(sub("[500.0]", "[0.0]")), "greater than zero",
                             "give a positive value"),
    "negative temperature": Case(run(sub("[500.0]", "[-5.0]")), "greater than zero",
                                 "give a positive value"),
    "NaN temperature": Case(run(sub("[500.0]", "[nan]")), "finite number", "replace nan/inf"),
    "infinite barrier": Case(run(sub("barrier_eV = 0.25", "barrier_eV = inf")), "finite number",
                             "replace nan/inf"),
    "absurd attempt frequency": Case(
        run(sub("attempt_frequency_THz = 10.0", "attempt_frequency_THz = 1e300")),
        "beyond any lattice vibration", "give it in THz"),
    "absurd site energy": Case(run(SMALL + "\n[model.site_energies_eV]\nsite = 1e308\n"),
                               "site energies must be finite and within",
                               "set [model.site_energies_eV]"),
    "absurd pair interaction": Case(
        run(SMALL + "\n[model.interactions_eV]\nmobile_mobile = [[1.01, 1e300]]\n"),
        "pair interactions must be finite and within", "set [model.interactions_eV]"),
    "seed beyond 64 bits": Case(run(sub("seed = 42", "seed = 99999999999999999999")),
                                "below 2**63", "smaller seed"),
    # ---- occupancy
    "filling above 1": Case(run(sub("filling = 0.5", "filling = 1.5")), "between 0 and 1",
                            "filling = 0.5"),
    "negative filling": Case(run(sub("filling = 0.5", "filling = -0.1")), "between 0 and 1",
                             "filling = 0.5"),
    "more ions than sites": Case(run(sub("filling = 0.5", "ions = 65")), "65 ions on 64 sites",
                                 "choose between 1 and 64"),
    "more vacancies than sites": Case(run(sub("filling = 0.5", "vacancies = 70")),
                                      "-6 ions on 64 sites", "choose between 1 and 64"),
    "no ions at all": Case(run(sub("filling = 0.5", "filling = 0.0")), "0 ions on 64 sites",
                           "choose between 1 and 64"),
    "two occupancy keys": Case(run(sub("filling = 0.5", "filling = 0.5\nions = 3")),
                               "exactly one of", "vacancies = N"),
    "full lattice": Case(run(sub("filling = 0.5", "vacancies = 0")),
                         "all 64 sites are occupied", "add vacancies"),
    "exclusions jam the placement": Case(
        run(sub("[lattice]", "[lattice]\nexclusion_distance_A = 1.5")),
        "could be placed without two on excluded", "lower the ion count"),
    # ---- network
    "zero supercell": Case(run(sub("[4, 4, 4]", "[0, 4, 4]")), "greater than zero",
                           "give a positive value"),
    "negative supercell": Case(run(sub("[4, 4, 4]", "[4, -1, 4]")), "greater than zero",
                               "give a positive value"),
    "gigantic supercell": Case(run(sub("[4, 4, 4]", "[100000, 100000, 100000]")),
                               "more than the engine can index", "fewer repetitions"),
    "cutoff with no hops": Case(run(sub("[lattice]", "[lattice]\nhop_cutoff_A = 0.5")),
                                "no two Li sites are within the hop cutoff",
                                "raise hop_cutoff_A"),
    "cutoff beyond the supercell": Case(run(sub("[lattice]", "[lattice]\nhop_cutoff_A = 100")),
                                        "own periodic image", "more repetitions"),
    "disconnected network": Case(run(cif_config("dimer.cif", "hop_cutoff_A = 1.5\n")),
                                 "only isolated clusters", "raise [lattice] hop_cutoff_A"),
    # ---- extreme rates
    "every rate underflows (cold)": Case(run(sub("[500.0]", "[0.001]")),
                                         "underflows to zero", "raise the temperature"),
    "every rate underflows (barrier)": Case(run(sub("barrier_eV = 0.25", "barrier_eV = 1000")),
                                            "underflows to zero", "lower the barriers"),
    "rates just above underflow": Case(  # 740 kT: finite rates, but the clock would overflow
        run(sub("barrier_eV = 0.25", f"barrier_eV = {740 * 8.617333262e-5 * 500:.6f}")),
        "clock would pass", "raise the temperature"),
    # ---- CIF
    "CIF without the mobile species": Case(run(cif_config("nacl.cif")), "contains no Li",
                                           "set [lattice] mobile"),
    "CIF that does not parse": Case(run(cif_config("bad.cif")), "could not read a crystal",
                                    "check that it is a valid CIF"),
    "missing CIF": Case(run(cif_config("nowhere.cif")), "no CIF file", "check [lattice] cif"),
    # ---- dopants
    "dopant on a site that does not exist": Case(
        run(LLZO + '[dopants]\nGa = { site = "Xx", per_formula_unit = 0.25 }\n'),
        "has no site 'Xx'", "use one of"),
    "dopant content needing negative Li": Case(
        run(LLZO + '[dopants]\nGa = { site = "Li", per_formula_unit = 3.0 }\n'),
        "would need -16 Li", "lower the dopant contents"),
    "dopant that is not an element": Case(
        run(LLZO + '[dopants]\nXx = { site = "Zr", per_formula_unit = 0.5 }\n'),
        "not a chemical element", "such as \"Ga\""),
    "dopants on a teaching lattice": Case(
        run(SMALL + '\n[dopants]\nGa = { site = "Li", per_formula_unit = 0.25 }\n'),
        "needs a builtin framework", "remove [dopants]"),
    # ---- output directory and checkpoints
    "out is a file": Case(cli("run", "quickstart", "--out", "{tmp}/a_file", "--quiet"),
                          "is a file, not a directory", "give the path of a directory", False),
    "unwritable out": Case(cli("run", "quickstart", "--out", "{tmp}/a_file/sub", "--quiet"),
                           "cannot write to the output directory", "writable --out", False),
    "truncated checkpoint": Case(ckpt_run("truncated"), "truncated or corrupt", "--fresh"),
    "checkpoint with a torn header": Case(ckpt_run("torn header"), "truncated or corrupt",
                                          "--fresh"),
    "foreign file as checkpoint": Case(ckpt_run("garbage"), "truncated or corrupt", "--fresh"),
    "checkpoint of another config": Case(ckpt_run("other"), "another config", "--fresh"),
    "checkpoint interval without --out": Case(
        cli("run", "quickstart", "--checkpoint-every", "10"), "needs --out DIR", "add --out",
        False),
    "negative checkpoint interval": Case(
        cli("run", "quickstart", "--out", "{tmp}/out", "--checkpoint-every", "-1"),
        "number of seconds", "--help"),
    # ---- command line
    "missing config file": Case(cli("run", "{tmp}/nope.toml"), "no config file",
                                "bundled examples", False),
    "unknown bundled example": Case(cli("run", "quickstar"), "no config file at 'quickstar'",
                                    "quickstart", False),
    "config that is a directory": Case(cli("run", "{tmp}"), "no config file", "give a path",
                                       False),
    "unknown subcommand": Case(cli("frobnicate"), "invalid choice", "see `kmc --help`", False),
    "unknown flag": Case(cli("run", "quickstart", "--frob"), "unrecognized arguments: --frob",
                         "--help", False),
    "no command": Case(cli(), "no command given", "kmc run quickstart", False),
    "run without a config": Case(cli("run"), "required: config", "see `kmc run --help`", False),
    "info of an unknown name": Case(cli("info", "llzo-cubc"), "neither a framework",
                                    "did you mean 'llzo-cubic'?", False),
    "info with a malformed dopant": Case(cli("info", "llzo-cubic", "--dopant", "Ta:Zr"),
                                         "must look like", "e.g. Ta:Zr:0.6", False),
    "info with a NaN cutoff": Case(cli("info", "sc", "--hop-cutoff", "nan"), "finite number",
                                   "replace nan/inf", False),
    # ---- campaigns
    "campaign: unknown grid key": Case(
        campaign('base = "base.toml"\n[grid]\n"occupancy.fillng" = [0.2, 0.5]\n'),
        "unknown key 'fillng'", "did you mean 'filling'?", False),
    "campaign: misspelled table": Case(
        campaign('base = "base.toml"\n[gird]\n"occupancy.filling" = [0.2]\n'),
        "unknown key 'gird'", "did you mean 'grid'?", False),
    "campaign: empty grid list": Case(
        campaign('base = "base.toml"\n[grid]\n"occupancy.filling" = []\n'),
        "empty list", "give at least one value", False),
    "campaign: type mismatch": Case(
        campaign('base = "base.toml"\n[grid]\n"occupancy.filling" = ["half", 0.5]\n'),
        "must be a number", "no quotes", False),
    "campaign: not UTF-8": Case(campaign(b'base = "\xff"\n'), "not UTF-8",
                                "save it as a UTF-8", False),
    "report of a directory without a store": Case(cli("report", "{tmp}/nowhere"),
                                                  "no campaign store", "kmc campaign", False),
}


def snapshot(d: Path) -> dict[str, bytes] | None:
    """Every file under ``d`` (relative name -> bytes), or None if ``d`` does not exist."""
    if not d.exists():
        return None
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def check_message(code: int, err: str, case: Case) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err                                 # exactly one line
    line = lines[0]
    assert line.startswith("kmc: error: "), line
    assert line.endswith((".", "?")), line                      # one finished sentence
    assert case.problem in line, (case.problem, line)           # names the problem
    assert case.fix in line, (case.fix, line)                   # and the fix
    return line


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_sentence_exit_2_and_no_partial_output(tmp_path, capsys, name):
    case = CASES[name]
    for cif, text in CIFS.items():
        (tmp_path / cif).write_text(text)
    (tmp_path / "a_file").write_text("not a directory")
    out = tmp_path / "out"
    argv = case.argv(tmp_path)
    if case.out:                            # a previous good result is in DIR and must survive
        out.mkdir(exist_ok=True)
        for fname, data in PREVIOUS.items():
            (out / fname).write_bytes(data)
    before = snapshot(out)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    check_message(code, captured.err, case)
    if name != "no command":                # (which prints the usage on stdout)
        assert captured.out == ""
    assert snapshot(out) == before          # untouched: no partial, temporary or missing file
    assert not (tmp_path / "cout").exists()


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 35


@pytest.mark.parametrize("name", ["full lattice", "every rate underflows (cold)",
                                  "exclusions jam the placement", "misspelled section"])
def test_a_failed_run_creates_no_output_directory(tmp_path, capsys, name):
    argv = CASES[name].argv(tmp_path)
    out = tmp_path / "out" / "nested"
    argv[argv.index("--out") + 1] = str(out)
    assert main(argv) == 2
    check_message(2, capsys.readouterr().err, CASES[name])
    assert not out.exists()


def test_failed_result_write_keeps_the_checkpoint_and_no_temporary_files(tmp_path, capsys,
                                                                          monkeypatch):
    """A disk that fills up while the results are written: exit 2, one sentence, the previous
    results untouched and no temporary file; the rerun resumes from the kept checkpoint."""
    import kmc.runs.output

    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    for fname, data in PREVIOUS.items():
        (out / fname).write_bytes(data)

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(kmc.runs.output, "csv_text", full_disk)
    argv = ["run", str(cfg), "--out", str(out), "--quiet", "--checkpoint-every", "1e-9"]
    code = main(argv)
    line = check_message(code, capsys.readouterr().err,
                         Case(lambda t: [], "could not write the results", "free some space"))
    assert "No space left on device" in line and "checkpoint is kept" in line
    assert sorted(p.name for p in out.iterdir()) == sorted([*PREVIOUS, RUN_CHECKPOINT_NAME])
    assert all((out / f).read_bytes() == d for f, d in PREVIOUS.items())
    monkeypatch.undo()
    assert main([a for a in argv if a != "--quiet"]) == 0
    assert "resumed from" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["msd.csv", "msd.png", "msd_loglog.png",
                                                     "result.json", "results.csv"]


def _subprocess_env() -> dict[str, str]:
    # the installed kmc (compiled, with its data), never the source tree: no repo on the path
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.parametrize("launcher", ["module", "console script"])
def test_real_processes_exit_2_without_traceback(tmp_path, launcher):
    if launcher == "module":
        head, names = [sys.executable, "-m", "kmc.cli.main"], ("malformed TOML", "full lattice")
    else:
        exe = shutil.which("kmc") or str(Path(sys.executable).with_name("kmc"))
        if not Path(exe).exists():
            pytest.skip("the kmc console script is not installed")
        head, names = [exe], ("unknown flag", "misspelled section")
    for name in names:
        case = CASES[name]
        argv = case.argv(tmp_path)
        p = subprocess.run(head + argv, capture_output=True, text=True, cwd=tmp_path,
                           env=_subprocess_env(), timeout=300)
        check_message(p.returncode, p.stderr, case)
        assert p.stdout == ""
