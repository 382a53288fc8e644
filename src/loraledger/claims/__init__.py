"""What a claimant or an auditor needs: reward proofs (local or from a node, checked on chain),
reward lists granted through an epoch, and verification of the epoch files against the chain."""
