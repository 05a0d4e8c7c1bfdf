"""``python -m symrnn …`` runs the command line (see :mod:`symrnn.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
