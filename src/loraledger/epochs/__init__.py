"""Epochs: the epoch file (build and verify, pure), its store on disk, the tables, and the
seal → submit → confirm machine that posts it on chain."""
