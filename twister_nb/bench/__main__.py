"""``python -m twister_nb.bench``: see :mod:`twister_nb.bench.cli`."""

import sys

from twister_nb.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
