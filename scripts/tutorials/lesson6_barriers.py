"""kmc lesson 6 — see `kmc tutorial` for the list; the code lives in src/kmc/teaching/tutorials/.

Usage: python scripts/tutorials/lesson6_barriers.py [--quick] [--outdir DIR]   (same as: kmc tutorial 6)
"""
import sys

from kmc.teaching.tutorials import script_main

if __name__ == "__main__":
    sys.exit(script_main(6))
