"""Adapters the node knows: where their files are, their hashes and their on-chain registration.

The public trail is the ``AdapterRecord`` in the record log (written in the same
transaction as the row); this table is the node's working state: the directory to load,
and whether ``AdapterRegistry`` has it yet (registration is retried until it does).
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class AdapterRow(SQLModel, table=True):
    """One adapter version, trained here or imported."""

    __tablename__ = "adapters"

    name: str = Field(primary_key=True)  # validated: [a-z0-9][a-z0-9._-]{0,63}
    adapter_id: str  # keccak256(name), the AdapterRegistry id
    adapter_hash: str = Field(unique=True)
    base_model_hash: str = Field(index=True)
    provenance_hash: str
    developer: str = Field(index=True)
    source: str  # "trained" | "external"
    path: str  # the adapter directory (PEFT layout + provenance.json)
    datanet_id: int | None = Field(default=None, index=True)
    snapshot_version: int | None = None
    record_seq: int
    created_at: int
    #: AdapterRegistry version, once registered on chain.
    chain_version: int | None = None
    tx_hash: str | None = None
