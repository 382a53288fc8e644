"""The node's HTTP API (FastAPI): proofs, epochs, records; admin endpoints behind a token."""

from .app import create_app

__all__ = ["create_app"]
