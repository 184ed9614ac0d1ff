"""``python -m kmc``: the ``kmc`` command."""
import sys

from kmc.cli.main import main

sys.exit(main())
