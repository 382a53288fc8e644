"""The ``loraledger`` command line (see :mod:`loraledger.cli.app`)."""

from .app import app, main, run

__all__ = ["app", "main", "run"]
