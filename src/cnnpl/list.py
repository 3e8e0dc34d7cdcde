"""``python -m cnnpl.list``: what is registered, where it came from, its parameters (see :mod:`cnnpl.listing`)."""

import sys

from cnnpl.listing import main

if __name__ == "__main__":
    sys.exit(main())
