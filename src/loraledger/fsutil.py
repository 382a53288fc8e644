"""Crash-safe file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, value: Any, *, compact: bool = False) -> None:
    """Key-sorted JSON written atomically (stable bytes for the same value); pretty unless
    ``compact`` (large files: a third smaller and faster to write)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":")) if compact else json.dumps(value, indent=2, sort_keys=True)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def sha256_file(path: Path, *, chunk_size: int = 8 << 20) -> bytes:
    """The 32-byte SHA-256 digest of the file at ``path``, streamed.

    Reads ``chunk_size`` bytes at a time into one reused buffer (``readinto``), so memory
    stays O(chunk_size) however large the file is (multi-GB model weights).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    # Unbuffered: the reads go straight into our buffer instead of through a second one.
    with open(path, "rb", buffering=0) as handle:
        while True:
            read = handle.readinto(view)
            if not read:
                break
            digest.update(view[:read])
    return digest.digest()
