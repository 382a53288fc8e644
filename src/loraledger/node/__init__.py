"""The node: wiring of ledger, chain and epochs for the CLI, the API and the daemon."""
