"""The chain edge: compile, deploy, transact and read the loraledger contracts (web3)."""
