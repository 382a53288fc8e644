"""loraledger: a blockchain-anchored attribution ledger node for specialised AI."""

__version__ = "0.1.0"
