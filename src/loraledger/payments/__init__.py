"""Payments: payers' deposits in the PaymentVault followed from the chain, balances debited by each answer, and each epoch's takings."""
