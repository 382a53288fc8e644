"""The chain edge: web3 client (errors translated to ``ChainError``), contracts, deploy,
compile, keys, the local devnet (anvil)."""
