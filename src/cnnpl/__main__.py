"""``python -m cnnpl``: see :mod:`cnnpl.cli`."""

from cnnpl.cli import main

if __name__ == "__main__":
    main()
