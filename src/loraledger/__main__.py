"""``python -m loraledger`` runs the CLI."""

from .cli import run

run()
