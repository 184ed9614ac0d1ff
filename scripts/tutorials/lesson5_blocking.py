"""kmc lesson 5 — see `kmc tutorial` for the list; the code lives in src/kmc/teaching/tutorials/.

Usage: python scripts/tutorials/lesson5_blocking.py [--quick] [--outdir DIR]   (same as: kmc tutorial 5)
"""
import sys

from kmc.teaching.tutorials import script_main

if __name__ == "__main__":
    sys.exit(script_main(5))
