"""Tables of the epoch state machine: epochs, cumulative balances, chain transactions, binding.

Wei amounts are stored as decimal strings: they exceed 64-bit integers, and SQLite has no
wider integer type.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class EpochStatus:
    """An epoch's states, in order. ``open`` is implicit: records not yet in any epoch."""

    SEALED = "sealed"        # records, log root, reward tree and epoch file fixed
    SUBMITTED = "submitted"  # signed post transaction stored and broadcast
    CONFIRMED = "confirmed"  # mined with the required confirmations, checked on chain

    ORDER = (SEALED, SUBMITTED, CONFIRMED)


class NodeBindingRow(SQLModel, table=True):
    """The chain deployment this ledger's epochs belong to (one row): a ledger is never
    posted to two deployments."""

    __tablename__ = "node_binding"

    id: int = Field(default=1, primary_key=True)
    chain_id: int
    ledger_address: str
    distributor_address: str


class EpochRow(SQLModel, table=True):
    """One sealed epoch and its progress towards the chain."""

    __tablename__ = "epochs"

    number: int = Field(primary_key=True)
    status: str = Field(index=True)
    start_seq: int
    end_seq: int  # log size after this epoch
    record_count: int
    log_root: str
    rewards_root: str
    total: str  # OPEN wei funded by this epoch
    cumulative_total: str
    accounts: int
    data_hash: str
    data_uri: str
    sealed_at: int
    post_tx_id: int | None = Field(default=None, foreign_key="chain_txs.id")
    block_number: int | None = None
    block_hash: str | None = None
    gas_used: int | None = None
    confirmed_at: int | None = None


class BalanceRow(SQLModel, table=True):
    """An account's cumulative reward as of the newest sealed epoch."""

    __tablename__ = "balances"

    account: str = Field(primary_key=True)
    cumulative: str
    epoch: int = Field(index=True)


class ChainTxStatus:
    SIGNED = "signed"        # stored before broadcast: a crash cannot lose it
    BROADCAST = "broadcast"
    MINED = "mined"
    CONFIRMED = "confirmed"
    REPLACED = "replaced"    # its nonce was used by another transaction; a new one was signed
    REVERTED = "reverted"    # mined but failed; the epoch went back to sealed


class ChainTxRow(SQLModel, table=True):
    """A transaction the node signed, recorded before it is broadcast."""

    __tablename__ = "chain_txs"

    id: int | None = Field(default=None, primary_key=True)
    epoch: int = Field(index=True)
    purpose: str  # "post"
    sender: str
    nonce: int
    tx_hash: str = Field(index=True)
    raw: str  # signed transaction, 0x-hex: re-broadcastable after a crash or a reorg
    status: str
    created_at: int
    block_number: int | None = None
