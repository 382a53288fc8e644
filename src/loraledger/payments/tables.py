"""Payments' rows in the ledger database: each payer's account, the debits of their answers, the
vault deposits credited (and how far the chain was read), and each epoch's takings."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = ["EpochTakingsRow", "PayerAccountRow", "PayerDebitRow", "VaultCursorRow", "VaultDepositRow"]


class PayerAccountRow(SQLModel, table=True):
    """One payer's totals (wei, decimal strings): deposits credited and fees debited. The balance is
    ``deposited - spent``; both only grow, each in the transaction of the record that moves it."""

    __tablename__ = "payer_accounts"

    payer: str = Field(primary_key=True)
    deposited: str = "0"
    spent: str = "0"
    deposits: int = 0
    answers: int = 0
    updated_at: int = 0


class PayerDebitRow(SQLModel, table=True):
    """One answer's fee, debited from its payer in its ``inference`` record's transaction (the seq).
    Per-model usage and each epoch's takings are sums of these."""

    __tablename__ = "payer_debits"

    inference_seq: int = Field(primary_key=True)
    payer: str = Field(index=True)
    model: str
    adapter_hash: str | None = None
    amount: str  # wei, decimal
    prompt_tokens: int
    completion_tokens: int
    created_at: int


class VaultDepositRow(SQLModel, table=True):
    """A ``Deposited`` event credited (its ``deposit`` record's seq): each event once."""

    __tablename__ = "vault_deposits"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_vault_deposit_event"),)

    id: int | None = Field(default=None, primary_key=True)
    tx_hash: str = Field(index=True)
    log_index: int
    payer: str = Field(index=True)
    sender: str
    amount: str
    block_number: int = Field(index=True)
    block_hash: str
    record_seq: int


class VaultCursorRow(SQLModel, table=True):
    """How far the vault's events were read: the last block read (and its hash, to notice a reorg)."""

    __tablename__ = "vault_cursor"

    id: int = Field(default=1, primary_key=True)
    vault: str
    block_number: int
    block_hash: str | None = None


class EpochTakingsRow(SQLModel, table=True):
    """What an epoch's answers debited from deposits (written when the epoch is sealed): the amount
    the vault releases to the operator before the epoch is posted, and the release's transaction."""

    __tablename__ = "epoch_takings"

    epoch: int = Field(primary_key=True)
    amount: str
    release_tx: str | None = None
