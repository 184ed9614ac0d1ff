"""Checkpoints of single runs: run_config(config, checkpoint=...) saves its whole state at safe
points and resumes from any saved blob to exactly the uninterrupted result."""
from __future__ import annotations

import math

import numpy as np
import pytest

import kmc.runs.checkpoint
import kmc.runs.replicas as replicas
from kmc.campaign.store import TIMING_KEYS
from kmc.config import Config
from kmc.engine.simulation import Simulation
from kmc.runs.checkpoint import CHECKPOINT_MAGIC
from kmc.runs.runner import UNREADABLE_CHECKPOINT_NOTE, decode_checkpoint, run_config


class Recorder:
    """A RunCheckpoint that hands out ``blob`` and keeps every save."""

    def __init__(self, interval_s: float = 0.0, blob: bytes | None = None) -> None:
        self.interval_s = interval_s
        self.blob = blob
        self.saved: list[bytes] = []

    def load(self) -> bytes | None:
        return self.blob

    def save(self, blob: bytes) -> None:
        self.saved.append(blob)


def strip(result) -> dict:
    d = result.to_dict()
    for r in d["results"]:
        for k in TIMING_KEYS:
            r.pop(k)
    return d


DOPED = {  # c-LLZO, one cell, two dopants (blockers on Li sites, Ta on Zr with a site-energy shift)
    "lattice": {"builtin": "llzo-cubic", "supercell": [1, 1, 1]},
    "dopants": {"Ga": {"site": "Li", "per_formula_unit": 0.25},
                "Ta": {"site": "Zr", "per_formula_unit": 0.25, "energy_shift_eV": 0.05,
                       "shift_radius_A": 3.0}},
    "run": {"temperatures_K": [500.0, 700.0], "hops_per_ion": 16, "equilibration_hops_per_ion": 4,
            "replicas": 2, "msd_points": 2, "time_origins": 2, "seed": 3},
}
CONVERGING = {  # teaching lattice, extended in convergence rounds (2 -> 4 -> 8 blocks)
    "lattice": {"builtin": "sc", "supercell": [4, 4, 4]},
    "occupancy": {"filling": 0.5},
    "model": {"interactions_eV": {"mobile_mobile": [[1.01, 0.03]]}},
    "run": {"temperatures_K": [450.0, 650.0], "hops_per_ion": 10, "equilibration_hops_per_ion": 3,
            "replicas": 2, "msd_points": 2, "time_origins": 2, "target_rel_err": 0.001,
            "max_hops_per_ion": 40, "seed": 8},
}

#: CONVERGING stopped on the target in round 3, then a fresh set of replicas measured (the
#: checkpoints fall before, at and inside the fresh round)
FRESH = {**CONVERGING, "run": {**CONVERGING["run"], "target_rel_err": 0.3, "max_hops_per_ion": 80,
                               "fresh_final_round": True}}


@pytest.mark.parametrize("name, data, chunk", [("doped c-LLZO", DOPED, 48),
                                               ("converging sc", CONVERGING, 64),
                                               ("fresh final round", FRESH, 64)])
def test_resume_from_saved_blobs_gives_the_uninterrupted_result(monkeypatch, name, data, chunk):
    monkeypatch.setattr(replicas, "SAFE_POINT_HOPS", chunk)   # safe points inside MSD intervals too
    config = Config.from_dict(data)
    plain = run_config(config)                              # no checkpoint at all
    ref = strip(plain)
    rec = Recorder(interval_s=0.0)                          # save at every safe point
    with_ckpt = run_config(config, checkpoint=rec)
    assert strip(with_ckpt) == ref                          # checkpointing changes nothing
    assert with_ckpt.checkpoint_info["saves"] == len(rec.saved) >= 20
    if name == "converging sc":
        assert [r["convergence_rounds"] for r in ref["results"]] == [3, 3]
    elif name == "fresh final round":
        assert [(r["convergence_rounds"], r["converged"], r["final_round"])
                for r in ref["results"]] == [(3, True, "fresh replicas")] * 2
    else:
        assert ref["formula"] == "Li6Ga0.25La3Zr1.75Ta0.25O12"
    total = with_ckpt.checkpoint_info["total_hops"]

    executed = [0]
    real_run = Simulation.run

    def counting_run(self, n_hops, t_stop=math.inf):
        done = real_run(self, n_hops, t_stop)
        executed[0] += done
        return done
    real_run_marks = Simulation.run_marks

    def counting_run_marks(self, marks_s, frames, max_hops):
        out = real_run_marks(self, marks_s, frames, max_hops)
        executed[0] += out[0]
        return out
    monkeypatch.setattr(Simulation, "run", counting_run)
    monkeypatch.setattr(Simulation, "run_marks", counting_run_marks)
    # resume from 12 saves spread evenly over the run, the first and the last included (every
    # one of the 40-70 saves cost 3-4 minutes of CI; the phases - creation, equilibration,
    # rounds, fresh round, temperatures - each hold several of the chosen ones)
    chosen = sorted(set(np.linspace(0, len(rec.saved) - 1, 12).round().astype(int).tolist()))
    if name == "fresh final round":  # some of them inside the fresh round
        states = [decode_checkpoint(rec.saved[i], config)[0] for i in chosen]
        assert any(t is not None and t.fresh for st in states for t in st.temps)
    restored = []
    for i in chosen:
        blob = rec.saved[i]
        executed[0] = 0
        res = run_config(config, checkpoint=Recorder(math.inf, blob))
        info = res.checkpoint_info
        assert strip(res) == ref, f"{name}: resume from save {i + 1} of {len(rec.saved)} differs"
        assert info["resumed"] and info["discarded"] is None and info["saves"] == 0
        # the work saved in the checkpoint is not done again: only the rest is executed
        assert info["total_hops"] == total
        assert executed[0] == total - info["restored_hops"]
        restored.append(info["restored_hops"])
    assert restored == sorted(restored) and restored[-1] == total and restored[0] < total / 4
    print(f"\n{name}: {len(rec.saved)} checkpoints, each resumed to the identical result "
          f"({total} engine hops per run)")


def test_mismatched_and_unreadable_blobs_start_afresh(monkeypatch):
    monkeypatch.setattr(replicas, "SAFE_POINT_HOPS", 100)
    config = Config.from_dict(CONVERGING)
    rec = Recorder(0.0)
    ref = strip(run_config(config, checkpoint=rec))
    blob = rec.saved[len(rec.saved) // 2]
    assert blob.startswith(CHECKPOINT_MAGIC)
    # another config (here: another seed) or another kmc version: ignored without a note
    other = Config.from_dict({**CONVERGING, "run": {**CONVERGING["run"], "seed": 9}})
    assert decode_checkpoint(blob, other) == (None, "mismatch")
    res = run_config(other, checkpoint=Recorder(math.inf, blob))
    assert not res.checkpoint_info["resumed"] and res.checkpoint_info["discarded"] == "mismatch"
    assert UNREADABLE_CHECKPOINT_NOTE not in res.notes
    monkeypatch.setattr(kmc.runs.checkpoint, "__version__", "0.0.0-other")
    res = run_config(config, checkpoint=Recorder(math.inf, blob))
    assert res.checkpoint_info["discarded"] == "mismatch" and strip(res)["results"] == \
        ref["results"]
    monkeypatch.undo()
    # truncated, bit-flipped, foreign or empty: a fresh run that says so in its notes
    flipped = bytearray(blob)
    flipped[-50] ^= 0xFF
    for bad in (blob[: len(blob) // 2], bytes(flipped), b"garbage", b"", CHECKPOINT_MAGIC + b"{"):
        res = run_config(config, checkpoint=Recorder(math.inf, bad))
        assert res.checkpoint_info == {**res.checkpoint_info, "resumed": False,
                                       "discarded": "unreadable"}
        d = strip(res)
        assert d["notes"][0] == UNREADABLE_CHECKPOINT_NOTE
        assert d["results"] == ref["results"] and d["notes"][1:] == ref["notes"]


def test_interval_controls_how_often_state_is_saved():
    config = Config.from_dict(CONVERGING)
    rec = Recorder(math.inf)
    run_config(config, checkpoint=rec)
    assert rec.saved == []
    rec = Recorder(3600.0)
    run_config(config, checkpoint=rec)
    assert rec.saved == []
