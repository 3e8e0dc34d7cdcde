"""``python -m cnnpl.list``: what is registered, where it came from, its parameters (see :mod:`cnnpl.listing`)."""

from cnnpl.errors import run_command
from cnnpl.listing import main

if __name__ == "__main__":
    run_command(main)
