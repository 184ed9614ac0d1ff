"""`kmc animate`: one frame per hop on a 2D teaching lattice, written atomically."""
import pytest
from PIL import Image

from kmc.cli.main import main
from kmc.teaching.animate import animate, animation_config


def test_gif_has_one_frame_per_hop_plus_the_start(tmp_path, capsys):
    out = tmp_path / "sq.gif"
    assert main(["animate", "square", "--out", str(out), "--hops", "4", "--supercell", "4", "4",
                 "--vacancies", "2", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.n_frames == 5
    assert [p.name for p in tmp_path.iterdir()] == ["sq.gif"]   # no temporary file left


def test_honeycomb_chain_and_config(tmp_path):
    assert animate("honeycomb", tmp_path / "h.gif", hops=2, ions=4).is_file()
    assert animate("chain", tmp_path / "c.gif", hops=2).is_file()
    cfg = tmp_path / "tri.toml"
    cfg.write_text('[lattice]\nbuiltin = "triangular"\nsupercell = [5, 5, 1]\n'
                   '[occupancy]\nfilling = 0.5\n[run]\ntemperatures_K = [500]\nseed = 2\n')
    c = animation_config(str(cfg))
    assert c.lattice.builtin == "triangular" and c.run.temperatures_K == (500.0,)
    assert animate(str(cfg), tmp_path / "t.gif", hops=2).is_file()


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
