"""How the fixtures beside this file were made (tests/test_compat.py reads them). Run it with an
OLD kmc installed (``git archive COMMIT | tar -x -C old && pip install --no-deps old``), from this
directory: ``python make_fixtures.py OUT`` writes ``OUT/run.ckpt`` (the state of run.toml saved at
a safe point, as ``kmc run run.toml --out DIR`` saves it) and ``OUT/camp/store.sqlite``
(campaign.toml run into a store); the fixtures are those files, gzipped (``gzip -9 -n``):

* run_2b77f77.ckpt.gz, store_schema2_2b77f77.sqlite.gz: commit 2b77f77, the last before the
  reorganisation into subpackages (plain-data checkpoint, store schema 2);
* run_9f79379.ckpt.gz: commit 9f79379, before ``[model] nonlinear_field`` was added;
* store_schema1_01991b4.sqlite.gz: commit 01991b4, the release before store schema 2 (its
  kmc.checkpoint wrote pickles, so only the store part runs there: pass ``--store-only``).

The modules imported here are those of the old, flat layout (kmc.runner, kmc.checkpoint).
"""
import shutil
import sys
from pathlib import Path

from kmc.campaign import Campaign

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
here = Path(__file__).parent
if "--store-only" not in sys.argv:
    import kmc.runner as runner
    from kmc.checkpoint import open_run_checkpoint
    from kmc.config import Config

    shutil.copy(here / "run.toml", out / "run.toml")
    config = Config.from_file(str(out / "run.toml"))

    class Recorder:
        """Keeps every checkpoint the run saves."""

        def __init__(self):
            self.interval_s, self.saved = 0.0, []

        def load(self):
            return None

        def save(self, blob):
            self.saved.append(blob)

    runner.SAFE_POINT_HOPS = 64
    rec = Recorder()
    runner.run_config(config, checkpoint=rec)
    (out / "ckpt").mkdir(exist_ok=True)
    # a save in the middle of the second temperature's measurement (the first one finished), so
    # the state holds every kind of object: finished results, frame buffers, engines, RNGs
    pick = [b for b in rec.saved if b"FrameBuffer" in b][-7]
    open_run_checkpoint(out / "ckpt", config, 0.0).save(pick)
    shutil.move(out / "ckpt" / "run.ckpt", out / "run.ckpt")
    (out / "ckpt").rmdir()
shutil.copy(here / "campaign.toml", out / "campaign.toml")
Campaign.from_file(str(out / "campaign.toml"), out=str(out / "camp")).run(workers=1, export=False)
