import math

"""`[output] trajectory`: ASE extended XYZ of one replica, read back with ase.io.read."""
import numpy as np
import pytest
from ase.io import read

from kmc.cli.main import main
from kmc.config import Config
from kmc.exceptions import ConfigError
from kmc.runs.runner import run_config

LLZO = """
[lattice]
builtin = "llzo-cubic"
supercell = [1, 1, 1]

[run]
temperatures_K = [600, 700]
hops_per_ion = 24
time_origins = 3
equilibration_hops_per_ion = 2
replicas = 2
seed = 3
msd_points = 4
{extra_run}
[output]
trajectory = "{path}"
trajectory_frames = {frames}
framework_atoms = {fw}
{extra_out}
"""
# c-LLZO conventional cell: La24 Zr16 O96 framework, 56 Li
FRAMEWORK_ATOMS, N_LI = 24 + 16 + 96, 56


def _config(tmp_path, path="traj.extxyz", frames=12, fw="false", extra_out="", extra_run="",
            dopants=""):
    text = LLZO.format(path=path, frames=frames, fw=fw, extra_out=extra_out,
                       extra_run=extra_run) + dopants
    f = tmp_path / "llzo.toml"
    f.write_text(text)
    return f


def _frac(cell, x):
    return np.asarray(x) @ np.linalg.inv(np.asarray(cell))


def test_llzo_extxyz_reads_back_with_frames_atoms_and_framework(tmp_path):
    cfg = _config(tmp_path, fw="true")
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    frames = read(out / "traj.extxyz", index=":")
    assert len(frames) == 12 + 1
    for at in frames:
        assert len(at) == N_LI + FRAMEWORK_ATOMS
        assert at.get_chemical_formula() == "La24Li56O96Zr16"
        assert at.pbc.all()
    t = [at.info["time_s"] for at in frames]
    assert t[0] == 0 and np.all(np.diff(t) > 0)
    hops = [at.info["hops"] for at in frames]
    assert hops[0] == 0 and np.all(np.diff(hops) > 0)
    assert frames[0].info["temperature_K"] == 600.0
    # ion ids are fixed and the framework does not move
    ids = frames[0].arrays["ion_id"]
    assert list(ids[:N_LI]) == list(range(N_LI)) and np.all(ids[N_LI:] == -1)
    np.testing.assert_array_equal(frames[0].positions[N_LI:], frames[-1].positions[N_LI:])


def test_framework_atoms_off_and_subdirectory_and_chosen_temperature(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # without --out, outputs go to the working directory
    (tmp_path / "elsewhere").mkdir()
    cfg = _config(tmp_path, path="elsewhere/t.xyz", frames=5,
                  extra_out="trajectory_temperature_K = 700")
    assert main(["run", str(cfg), "--quiet"]) == 0
    frames = read(tmp_path / "elsewhere" / "t.xyz", index=":")
    assert len(frames) == 6 and all(len(a) == N_LI for a in frames)
    assert set(frames[0].get_chemical_symbols()) == {"Li"}
    assert frames[0].info["temperature_K"] == 700.0


def test_absolute_trajectory_path_is_refused(tmp_path, capsys):
    """Outputs stay inside the output directory: an absolute path is one sentence, exit 2."""
    cfg = _config(tmp_path, path=str(tmp_path / "t.xyz"))
    assert main(["run", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "leaves the output directory" in err and "Traceback" not in err
    assert not (tmp_path / "t.xyz").exists()


def test_positions_follow_the_unwrapped_displacement_modulo_the_cell(tmp_path):
    """Wrapped site positions and the unwrapped displacement (accumulated across the three
    measurement blocks, whose resets the recorder must bridge) differ by lattice vectors."""
    cfg = Config.from_file(_config(tmp_path, frames=9))
    res = run_config(cfg)
    frames = res.trajectory.to_atoms()
    cell = frames[0].cell[:]
    p0 = frames[0].positions[:N_LI]
    crossed, moved = 0, 0
    for at in frames[1:]:
        d = at.arrays["displacement"][:N_LI]
        off = _frac(cell, at.positions[:N_LI] - p0 - d)
        np.testing.assert_allclose(off, np.round(off), atol=1e-6)
        crossed += int(np.any(np.round(off) != 0))
        moved = max(moved, int(np.sum(np.linalg.norm(d, axis=1) > 0.5)))
    # the check has teeth: ions moved, and some crossed the periodic boundary (so wrapped and
    # unwrapped coordinates differ by a lattice vector, not by zero)
    assert moved > 10 and crossed > 0
    # the last frame holds the replica's whole measurement: displacement of ~24 hops per ion
    last = frames[-1].arrays["displacement"][:N_LI]
    assert np.sum(last ** 2) > 0
    assert frames[-1].info["hops"] == math.ceil(cfg.run.hops_per_ion * N_LI)


def test_recording_does_not_change_the_results(tmp_path):
    with_traj = Config.from_file(_config(tmp_path, frames=7))
    without = Config.from_dict({k: v for k, v in with_traj.to_dict().items() if k != "output"})
    a, b = run_config(with_traj), run_config(without)
    assert a.trajectory is not None and b.trajectory is None
    for ra, rb in zip(a.results, b.results):
        for key in ("D_tracer_cm2_s", "D_jump_cm2_s", "correlation_factor", "hops"):
            assert ra[key] == rb[key]


def test_blockers_are_written_with_the_dopant_symbol(tmp_path):
    cfg = Config.from_file(_config(tmp_path, frames=2, dopants="""
[dopants]
Ga = { site = "Li1", per_formula_unit = 0.25 }
"""))
    res = run_config(cfg)
    atoms = res.trajectory.to_atoms()
    syms = atoms[0].get_chemical_symbols()
    n_ga = syms.count("Ga")
    assert n_ga == res.network["blocked_per_class"]["Li1"] == 2
    assert syms.count("Li") == res.network["n_ions"]


def test_teaching_lattice_trajectory_via_python(tmp_path):
    cfg = Config.from_dict({"lattice": {"builtin": "square", "supercell": [6, 6, 1]},
                            "occupancy": {"vacancies": 2},
                            "run": {"temperatures_K": [600], "hops_per_ion": 10,
                                    "replicas": 2, "seed": 1},
                            "output": {"trajectory": "sq.extxyz", "trajectory_frames": 4}})
    res = run_config(cfg)
    path = res.trajectory.write(tmp_path / "sq.extxyz")
    frames = read(path, index=":")
    assert len(frames) == 5 and len(frames[0]) == 34
    assert not list(tmp_path.glob(".*"))          # no temporary files left


@pytest.mark.parametrize("output,message", [
    ({"trajectory": "t.txt"}, "must be a file name ending in .extxyz"),
    ({"trajectory_frames": 3}, "only acts together with trajectory"),
    ({"trajectory": "t.extxyz", "trajectory_frames": 0}, "greater than zero"),
    ({"trajectory": "t.extxyz", "trajectory_temperature_K": 500}, "not one of [run]"),
    ({"trajectory": "t.extxyz", "framework_atoms": "yes"}, "true or false"),
    ({"trajectroy": "t.extxyz"}, "did you mean 'trajectory'"),
])
def test_bad_output_section(output, message):
    with pytest.raises(ConfigError, match=None) as exc:
        Config.from_dict({"occupancy": {"vacancies": 1}, "output": output})
    assert message in str(exc.value)


def test_missing_trajectory_directory_is_an_error_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, path="nowhere/t.extxyz")
    assert main(["run", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
