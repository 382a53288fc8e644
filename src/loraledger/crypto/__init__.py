"""Formats anyone can recompute, with no I/O: RFC 8785 canonical JSON (``canonical``), the RFC 9162 record log
(``translog``) and OpenZeppelin's StandardMerkleTree (``merkle``)."""
