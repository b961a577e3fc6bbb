"""``python -m skivae`` runs the command line."""

import sys

from skivae.cli import main

sys.exit(main())
