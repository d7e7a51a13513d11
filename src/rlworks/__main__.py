"""``python -m rlworks ...`` runs the same command line as the ``rlworks`` script."""

import sys

from .cli import main

sys.exit(main())
