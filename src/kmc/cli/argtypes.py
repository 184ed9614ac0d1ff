"""argparse ``type=`` converters shared by the ``kmc`` sub-commands: a bad value becomes one
sentence (via the parser's ``error``), never a traceback."""
from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``--workers``, ``--hops``, ``--supercell``)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of at least 1, not {text!r}")
    return n


def positive_float(text: str) -> float:
    """A finite number above 0 (``--fps``, ``--temperature``)."""
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not (0 < x < math.inf):
        raise argparse.ArgumentTypeError(f"give a positive number, not {text!r}")
    return x


def seconds(text: str) -> float:
    """A finite number of seconds of at least 0 (``--checkpoint-every``; 0 switches it off)."""
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not (0 <= x < math.inf):
        raise argparse.ArgumentTypeError(f"give a number of seconds of at least 0, not {text!r}")
    return x
