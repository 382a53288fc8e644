"""Reads of the epoch tables for display (the dashboard): the transaction that posted each epoch.

The epoch rows name their current post transaction by id (``EpochRow.post_tx_id``, a
``ChainTxRow``); :func:`post_tx_hashes` joins the two in one read.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from ..db import read_session
from .tables import ChainTxRow, EpochRow

__all__ = ["post_tx_hashes"]


def post_tx_hashes(engine: Engine) -> dict[int, str]:
    """``{epoch number: hash of its post transaction}`` for every epoch that has one."""
    with read_session(engine, what="cannot read the epochs' post transactions") as session:
        rows = session.exec(
            select(EpochRow.number, ChainTxRow.tx_hash).join(ChainTxRow, ChainTxRow.id == EpochRow.post_tx_id)
        )
        return {int(number): tx_hash for number, tx_hash in rows}
