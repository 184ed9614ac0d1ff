"""kmc lesson 2 — see `kmc tutorial` for the list; the code lives in kmc/tutorials/.

Usage: python scripts/tutorials/lesson2_mechanisms.py [--quick] [--outdir DIR]   (same as: kmc tutorial 2)
"""
import sys

from kmc.tutorials._common import script_main

if __name__ == "__main__":
    sys.exit(script_main(2))
