"""`kmc animate`: one frame per hop on a 2D teaching lattice, written atomically, and each frame
draws the state of the simulation it names (checked against an independent re-run)."""
import numpy as np
import pytest
from matplotlib import animation
from matplotlib.colors import to_rgba
from PIL import Image

from kmc.cli.main import main
from kmc.engine.simulation import Simulation
from kmc.runs.system import build_system
from kmc.teaching.animate import HOP_COLOUR, ION_COLOUR, animate, animation_config


def _spy_frames(monkeypatch):
    """Record, at every grabbed frame, the face colour of each site marker and the title."""
    frames = []
    grab = animation.PillowWriter.grab_frame

    def spy(self, **kw):
        sites = [c for c in self.fig.axes[0].collections if len(c.get_offsets()) > 1][-1]
        frames.append((np.array(sites.get_facecolors()), self.fig._suptitle.get_text()))
        return grab(self, **kw)

    monkeypatch.setattr(animation.PillowWriter, "grab_frame", spy)
    return frames


@pytest.mark.parametrize("lattice, supercell, vacancies", [("square", (4, 4), 3),
                                                            ("honeycomb", (3, 3), 5)])
def test_every_frame_draws_the_simulation_state(tmp_path, monkeypatch, lattice, supercell,
                                                vacancies):
    """Frame k shows the occupancy after k hops of the same simulation run independently here:
    ions blue, vacancies white, and the ion of hop k orange at the site it hopped to; the title
    gives the hop count and the ion and vacancy counts."""
    hops, seed = 6, 5
    frames = _spy_frames(monkeypatch)
    out = animate(lattice, tmp_path / "a.gif", hops=hops, supercell=supercell,
                  vacancies=vacancies, seed=seed)
    cfg = animation_config(lattice, supercell=supercell, vacancies=vacancies, seed=seed)
    system = build_system(cfg)
    sim = Simulation(system.model, cfg.run.temperatures_K[0], n_ions=system.n_ions, seed=seed)
    n_sites = system.network.n_sites
    blue, orange, white = to_rgba(ION_COLOUR), to_rgba(HOP_COLOUR), (1.0, 1.0, 1.0, 1.0)
    assert len(frames) == hops + 1
    for k, (face, title) in enumerate(frames):
        if k:
            before = sim.engine.state["ion_site"].copy()
            sim.run(1)
        occ = sim.occupancy
        expected = np.where(occ[:, None] == 1, np.array([blue]), np.array([white]))
        if k:
            moved = np.flatnonzero(sim.engine.state["ion_site"] != before)
            assert len(moved) == 1
            expected[sim.engine.state["ion_site"][moved[0]]] = orange
        np.testing.assert_allclose(face, expected, atol=0.02, err_msg=f"frame {k}")
        assert f"{n_sites - vacancies} ions, {vacancies} vacancies" in title
        assert f"hop {k}," in title
    # the GIF holds those frames: beyond the legend's orange marker (frame 0 has only that), a
    # larger orange site marker appears from the second frame on
    with Image.open(out) as im:
        assert im.n_frames == hops + 1
        n_orange = []
        for k in range(im.n_frames):
            im.seek(k)
            px = np.asarray(im.convert("RGB"), float)
            n_orange.append(int((np.abs(px - 255 * np.array(orange[:3])).max(axis=2) < 12).sum()))
    assert all(n > 2 * n_orange[0] for n in n_orange[1:]), n_orange


def test_gif_has_one_frame_per_hop_plus_the_start(tmp_path, capsys):
    out = tmp_path / "sq.gif"
    assert main(["animate", "square", "--out", str(out), "--hops", "4", "--supercell", "4", "4",
                 "--vacancies", "2", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.n_frames == 5
    assert [p.name for p in tmp_path.iterdir()] == ["sq.gif"]   # no temporary file left


def test_honeycomb_chain_and_config(tmp_path):
    for name, kw in (("honeycomb", {"ions": 4}), ("chain", {})):
        with Image.open(animate(name, tmp_path / f"{name}.gif", hops=2, **kw)) as im:
            assert im.n_frames == 3
    cfg = tmp_path / "tri.toml"
    cfg.write_text('[lattice]\nbuiltin = "triangular"\nsupercell = [5, 5, 1]\n'
                   '[occupancy]\nfilling = 0.5\n[run]\ntemperatures_K = [500]\nseed = 2\n')
    c = animation_config(str(cfg))
    assert c.lattice.builtin == "triangular" and c.run.temperatures_K == (500.0,)
    with Image.open(animate(str(cfg), tmp_path / "t.gif", hops=2)) as im:
        assert im.n_frames == 3


@pytest.mark.parametrize("argv,message", [
    (["animate", "sc"], "2D teaching lattices"),
    (["animate", "llzo-cubic"], "2D teaching lattices"),
    (["animate", "square", "--out", "x.png"], "writes .gif"),
    (["animate", "square", "--hops", "0"], "at least 1"),
    (["animate", "square", "--out", "/nonexistent/dir/a.gif"], "does not exist"),
])
def test_bad_input_is_one_sentence_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_mp4_needs_ffmpeg(tmp_path, capsys):
    from matplotlib import animation

    if animation.writers.is_available("ffmpeg"):
        assert main(["animate", "square", "--hops", "2", "--out", str(tmp_path / "a.mp4")]) == 0
    else:
        assert main(["animate", "square", "--hops", "2", "--out", str(tmp_path / "a.mp4")]) == 2
        assert "ffmpeg" in capsys.readouterr().err
