"""The node's local ledger (storage edge)."""
