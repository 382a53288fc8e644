"""Payers and their API keys: who pays for an answer.

``create`` makes a key (``llk_`` + 43 url-safe characters, 256 random bits) for a payer's
address and returns it once; only its sha256 is stored. A request carries the key as its
bearer token (the ``openai`` client's ``api_key``); ``authenticate`` maps it to the payer,
or raises :class:`~loraledger.errors.Unauthorized` for a missing, unknown or revoked key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlmodel import select

from ..db import read_session, session_scope
from ..errors import InputError, NotFoundError, Unauthorized
from ..records.fields import parse_address
from .tables import PayerKeyRow

__all__ = ["KEY_PREFIX", "PayerKeys", "key_hash"]

KEY_PREFIX = "llk_"
_SHOWN = 12  # characters of a key kept to tell keys apart ("llk_" + 8)
_MAX_KEY = 200


def key_hash(key: str) -> str:
    """The stored form of a key: hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class PayerKeys:
    """API keys of the payers of one node (rows in ``payer_keys``)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def create(self, payer: str, *, label: str | None = None) -> tuple[PayerKeyRow, str]:
        """A new key for ``payer``: (its row, the key). The key is not stored: show it once."""
        address = parse_address(payer)
        if label is not None and (len(label) > 100 or not label.isprintable()):
            raise InputError("label must be at most 100 printable characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = PayerKeyRow(key_hash=key_hash(key), prefix=key[:_SHOWN], payer=address, label=label,
                          created_at=int(self.clock()))
        with session_scope(self.engine, what="storing an API key") as session:
            session.add(row)
            session.flush()
        return row, key

    def authenticate(self, key: str | None) -> str:
        """The payer address of ``key``; ``Unauthorized`` for a missing, unknown or revoked key."""
        if not key:
            raise Unauthorized("this endpoint needs an API key: Authorization: Bearer <key> (loraledger keys create)")
        if len(key) > _MAX_KEY or not key.startswith(KEY_PREFIX):
            raise Unauthorized("invalid API key")
        with read_session(self.engine, what="checking an API key") as session:
            row = session.exec(select(PayerKeyRow).where(PayerKeyRow.key_hash == key_hash(key))).first()
        if row is None:
            raise Unauthorized("invalid API key")
        if row.revoked_at is not None:
            raise Unauthorized(f"API key {row.prefix}… was revoked")
        return row.payer

    def all(self) -> list[PayerKeyRow]:
        with read_session(self.engine, what="listing API keys") as session:
            return list(session.exec(select(PayerKeyRow).order_by(PayerKeyRow.id)))

    def revoke(self, key_id: int) -> PayerKeyRow:
        """Revoke key ``key_id`` (idempotent: a revoked key stays revoked at its first time)."""
        with session_scope(self.engine, what="revoking an API key") as session:
            row = session.get(PayerKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"no API key {key_id}")
            if row.revoked_at is None:
                row.revoked_at = int(self.clock())
                session.add(row)
        return row


def key_to_dict(row: PayerKeyRow) -> dict[str, object]:
    """A key as ``keys list`` shows it (never the key itself)."""
    return {"id": row.id, "prefix": row.prefix + "…", "payer": row.payer, "label": row.label,
            "createdAt": row.created_at, "revokedAt": row.revoked_at}
