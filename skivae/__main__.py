"""``python -m skivae`` runs the command line."""

import sys

from skivae.cli import main

if __name__ == "__main__":
    sys.exit(main())
