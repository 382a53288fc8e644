"""Records: their kinds and field types (pure), their tables, and ``RecordLedger`` (append, log, proofs)."""
