"""Plain-data checkpoints (issue 20 item 2, issue 19 item 6): the codec round-trips every kind
of value a run state holds, decodes only registered classes, never unpickles, and a crafted pickle
in ``DIR/run.ckpt`` or ``DIR/checkpoints/<key>.ckpt`` runs no code."""
from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest

import kmc.runs.checkpoint as checkpoint
import kmc.runs.replicas as replicas
import kmc.runs.runner as runner
from kmc.campaign.core import Campaign
from kmc.campaign.store import TIMING_KEYS
from kmc.cli.main import main
from kmc.config import Config
from kmc.config.keys import run_key
from kmc.runs.checkpoint import (
    CHECKPOINT_MAGIC,
    RUN_CHECKPOINT_NAME,
    CheckpointDir,
    CheckpointFile,
    PlainDataError,
    decode_plain,
    encode_plain,
    register_plain,
)
from kmc.runs.runner import decode_checkpoint, run_config

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


@register_plain(name="test-point")
@dataclass
class Point:
    x: float
    tags: list = field(default_factory=list)


class Payload:
    """What an attacker would put into a pickle: unpickling it creates ``path``."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def legacy_blob(config: Config, payload: bytes, fmt: int = 1) -> bytes:
    """A run-state blob framed exactly as kmc frames one (valid header and checksum)."""
    header = {"format": fmt, "kmc_version": checkpoint.__version__, "config": config.to_dict(),
              "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return CHECKPOINT_MAGIC + text.encode("ascii") + b"\n" + payload


def strip(result) -> dict:
    d = result.to_dict()
    for r in d["results"]:
        for k in TIMING_KEYS:
            r.pop(k)
    return d


# ---------------------------------------------------------------------------------- the codec
def test_codec_round_trips_every_kind_of_value():
    shared = Point(1.5, ["a"])
    bg = np.random.PCG64(123)
    bg.random_raw(7)                                    # a state in the middle of its stream
    tree = {"none": None, "t": True, "f": False, "big": 2 ** 100, "neg": -3, "s": "µ-text",
            "floats": [0.1, -0.0, math.inf, -math.inf, math.nan, 1e-320],
            "tuple": (1, (2.5, "x")), "ints": {1: "one", (2, 3): "pair"}, "$tag": {"$a": 0},
            "arrays": [np.arange(5, dtype=np.int8), np.zeros((2, 3)), np.array([], np.int64),
                       np.array([[True, False]]), np.array([1 + 2j])],
            "scalars": [np.float64(0.25), np.int32(-7), np.bool_(True), np.float32(1.5)],
            "obj": shared, "again": shared, "rng": bg}
    blob = encode_plain(tree)
    assert encode_plain(tree) == blob                   # equal trees give equal bytes
    out = decode_plain(blob)
    assert out["big"] == 2 ** 100 and out["neg"] == -3 and out["s"] == "µ-text"
    assert out["none"] is None and out["t"] is True and out["f"] is False
    fl = out["floats"]
    assert fl[0] == 0.1 and math.copysign(1, fl[1]) == -1 and fl[2] == math.inf
    assert fl[3] == -math.inf and math.isnan(fl[4]) and fl[5] == 1e-320
    assert out["tuple"] == (1, (2.5, "x")) and isinstance(out["tuple"][1], tuple)
    assert out["ints"] == {1: "one", (2, 3): "pair"} and out["$tag"] == {"$a": 0}
    for a, b in zip(out["arrays"], tree["arrays"]):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        assert a.flags.writeable and a.flags.c_contiguous
    for a, b in zip(out["scalars"], tree["scalars"]):
        assert type(a) is type(b) and a == b
    assert isinstance(out["obj"], Point) and out["obj"] == shared
    assert out["again"] is out["obj"]                   # a shared object stays shared
    assert np.array_equal(out["rng"].random_raw(5), bg.random_raw(5))   # same stream onwards


def test_encoding_an_unregistered_class_names_it():
    class Stranger:
        pass
    with pytest.raises(TypeError, match="Stranger.*register_plain"):
        encode_plain({"x": Stranger()})
    with pytest.raises(TypeError, match="objects"):
        encode_plain(np.array([None, 1], dtype=object))


def test_decoder_refuses_unregistered_names_and_foreign_archives(tmp_path):
    good = encode_plain(Point(2.0))
    forged = good.replace(b'"test-point"', b'"os.system!"')     # same length: still a zip
    with pytest.raises(PlainDataError):
        decode_plain(forged)
    for bad in (b"", b"garbage", good[: len(good) // 2], pickle.dumps(Point(1.0))):
        with pytest.raises(PlainDataError):
            decode_plain(bad)
    # an .npz whose member is a pickled object array (np.save with allow_pickle=True)
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.savez(buf, skeleton=np.frombuffer(b'{"format":"kmc-plain-data-1","data":{"$a":0}}',
                                         dtype=np.uint8),
             a0=np.array([Payload(marker)], dtype=object))
    with pytest.raises(PlainDataError):
        decode_plain(buf.getvalue())
    assert not marker.exists()


# ---------------------------------------------------------------------------------- run state
def test_trajectory_recorder_stays_shared_across_a_resume(tmp_path, monkeypatch):
    """The temperature's recorder and replica 0's recorder are one object; a resumed run must
    keep them one, or the trajectory written would stop at the checkpoint."""
    monkeypatch.setattr(replicas, "SAFE_POINT_HOPS", 50)
    data = {"lattice": {"builtin": "sc", "supercell": [4, 4, 4]},
            "occupancy": {"filling": 0.5},
            "run": {"temperatures_K": [600.0], "hops_per_ion": 20, "replicas": 2,
                    "equilibration_hops_per_ion": 2, "time_origins": 2, "seed": 5},
            "output": {"trajectory": "t.extxyz", "trajectory_frames": 10}}
    config = Config.from_dict(data)
    saved = []

    class Rec:
        interval_s = 0.0

        def load(self):
            return None

        def save(self, blob):
            saved.append(blob)
    ref = run_config(config, checkpoint=Rec())
    mid = saved[len(saved) // 2]
    state, why = decode_checkpoint(mid, config)
    # the recorder belongs to the temperature state (it records a copy of replica 0)
    assert why is None and type(state.temps[0].recorder).__name__ == "TrajectoryRecorder"

    class Resume(Rec):
        def load(self):
            return mid
    res = run_config(config, checkpoint=Resume())
    assert res.checkpoint_info["resumed"]
    assert strip(res) == strip(ref)
    for name in ("sites", "displacement", "times_s", "hops"):
        assert np.array_equal(getattr(res.trajectory, name), getattr(ref.trajectory, name))


# ---------------------------------------------------------------------------------- hostile files
def test_crafted_pickle_in_run_ckpt_runs_no_code(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL)
    config = Config.from_toml(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "pwned"
    ckpt = CheckpointFile(out / RUN_CHECKPOINT_NAME, run_key(config.to_dict()))
    argv = ["run", str(cfg), "--out", str(out), "--quiet"]
    # an old-format (pickle) checkpoint with a valid header and checksum: refused, unread
    ckpt.save(legacy_blob(config, pickle.dumps(Payload(marker))))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "old pickle format" in err and "--fresh" in err and "Traceback" not in err
    assert not marker.exists() and ckpt.path.exists()          # not run, not deleted
    # the same pickle claiming to be the plain-data format: unreadable, a fresh run says so
    ckpt.save(legacy_blob(config, pickle.dumps(Payload(marker)), fmt=checkpoint.CHECKPOINT_FORMAT))
    assert main(argv) == 0
    assert not marker.exists()
    note = json.loads((out / "result.json").read_text())["notes"][0]
    assert note == runner.UNREADABLE_CHECKPOINT_NOTE
    # --fresh discards the legacy file and runs
    ckpt.save(legacy_blob(config, pickle.dumps(Payload(marker))))
    (out / "result.json").unlink()
    assert main([*argv, "--fresh"]) == 0
    assert not marker.exists() and not ckpt.path.exists()


def test_crafted_pickle_in_campaign_checkpoints_runs_no_code(tmp_path, capsys):
    base = tmp_path / "base.toml"
    base.write_text(SMALL)
    spec = tmp_path / "c.toml"
    spec.write_text('base = "base.toml"\n[grid]\n"run.seed" = [1, 2]\n')
    out = tmp_path / "camp"
    marker = tmp_path / "pwned"
    camp = Campaign.from_file(spec, out=out)
    key = camp.points[0].key
    config = Config.from_dict(camp.points[0].config)
    ckpts = CheckpointDir(out)
    ckpts.directory.mkdir(parents=True)
    ckpts.save(key, legacy_blob(config, pickle.dumps(Payload(marker))))
    argv = ["campaign", str(spec), "--out", str(out), "--workers", "1", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "old pickle format" in err and f"{key}.ckpt" in err and "Traceback" not in err
    assert not marker.exists() and not (out / "store.sqlite").exists()
    ckpts.save(key, legacy_blob(config, pickle.dumps(Payload(marker)),
                                fmt=checkpoint.CHECKPOINT_FORMAT))
    assert main(argv) == 0                                    # unreadable: that point restarts
    assert not marker.exists() and ckpts.keys() == set()
