"""``python -m cnnpl``: see :mod:`cnnpl.cli`."""

from cnnpl.cli import main
from cnnpl.errors import run_command

if __name__ == "__main__":
    run_command(main)
