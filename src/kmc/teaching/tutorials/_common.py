"""Shared pieces of the lessons: the output directory, printing, figures, the script entry."""
from __future__ import annotations

import tempfile
import textwrap
import time
from pathlib import Path
from typing import Callable

from kmc.exceptions import ConfigError
from kmc.files import atomic_write_with

WIDTH = 96


def prepare_outdir(outdir: str | Path) -> Path:
    """Create ``outdir`` if needed and check that it is writable (ConfigError otherwise)."""
    d = Path(outdir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=d).close()
    except OSError as exc:
        raise ConfigError(f"cannot write to the tutorial output directory {str(d)!r} "
                          f"({exc.strerror}); choose a writable --outdir.") from None
    return d


def say(text: str = "") -> None:
    """Print a paragraph (dedented, re-wrapped; blank lines separate paragraphs; lines starting
    with two spaces are kept as they are)."""
    text = textwrap.dedent(text).strip("\n")
    out = []
    for para in text.split("\n\n"):
        lines = para.split("\n")
        if any(line.startswith("  ") for line in lines):
            out.append("\n".join(lines))
        else:
            out.append(textwrap.fill(" ".join(x.strip() for x in lines), WIDTH))
    print("\n\n".join(out), flush=True)
    print(flush=True)


def heading(title: str) -> None:
    print(f"\n{title}\n{'=' * len(title)}\n", flush=True)


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    """A Figure with an Agg canvas (no pyplot state) and its axes."""
    # lazy: matplotlib costs ~0.5 s; only figures need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def save_figure(fig, outdir: Path, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``outdir/name`` (PNG) atomically; returns the path."""
    path = Path(outdir) / name
    atomic_write_with(path, lambda p: fig.savefig(p, format="png", dpi=dpi))
    print(f"  figure: {path}", flush=True)
    return path


def pm(value: float, err: float, digits: int = 3) -> str:
    """``value ± err`` with ``digits`` significant digits on the value."""
    return f"{value:.{digits}g} ± {err:.2g}"





def timed(run: Callable[[Path, bool], dict]) -> Callable[[Path, bool], dict]:
    """Decorator: add ``seconds`` to a lesson's result and print the wall time at the end."""
    def wrapper(outdir: Path, quick: bool = False) -> dict:
        t0 = time.perf_counter()
        res = run(outdir, quick)
        res["seconds"] = time.perf_counter() - t0
        print(f"(lesson finished in {res['seconds']:.1f} s{', quick mode' if quick else ''})",
              flush=True)
        return res
    wrapper.__doc__ = run.__doc__
    wrapper.__name__ = run.__name__
    return wrapper
