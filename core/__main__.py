"""``python -m optarena``: the same command line as the ``optarena`` script."""

import sys

from optarena.harness.cli import main

sys.exit(main())
