"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Files are written with the usual permissions of a new file (``0o666`` less the process's
umask, so ``0644`` under the common umask): epoch files, manifests and adapters are
published for audit. Secrets pass ``mode=0o600`` (keystores).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


#: The process's umask, read once (reading it means setting it, which is not thread-safe).
_UMASK = _umask()
#: The mode ``open()`` gives a new file in this process (``0644`` under the common umask).
DEFAULT_FILE_MODE = 0o666 & ~_UMASK


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync, rename.

    ``mode`` defaults to what ``open()`` would give a new file (``0o666 & ~umask``); the temp
    file ``mkstemp`` makes is ``0o600``, which would hide published files from other users."""
    atomic_write_stream(path, (data,), mode=mode)


def atomic_write_stream(path: Path, pieces: Iterable[bytes], *, mode: int | None = None) -> Path:
    """Write ``pieces`` in order to ``path`` atomically (as :func:`atomic_write_bytes`), never holding
    more than one piece: a file of any size in bounded memory. An exception from ``pieces`` leaves
    ``path`` untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, DEFAULT_FILE_MODE if mode is None else mode)
        with os.fdopen(fd, "wb", buffering=1 << 20) as handle:
            for piece in pieces:
                handle.write(piece)
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
    return path


def atomic_write_json(path: Path, value: Any, *, compact: bool = False, mode: int | None = None) -> None:
    """Key-sorted JSON written atomically (stable bytes for the same value); pretty unless
    ``compact`` (large files: a third smaller and faster to write). ``mode`` as for
    :func:`atomic_write_bytes`."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":")) if compact else json.dumps(value, indent=2, sort_keys=True)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"), mode=mode)


def sha256_file(path: Path, *, chunk_size: int = 8 << 20) -> bytes:
    """The 32-byte SHA-256 digest of the file at ``path``, streamed.

    Reads ``chunk_size`` bytes at a time into one reused buffer (``readinto``), so memory
    stays O(chunk_size) however large the file is (multi-GB model weights).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    digest = hashlib.sha256()
    # No bigger than the file (a 200 KiB adapter would otherwise zero-fill 8 MiB per hash).
    buffer = bytearray(max(1, min(chunk_size, os.path.getsize(path))))
    view = memoryview(buffer)
    # Unbuffered: the reads go straight into our buffer instead of through a second one.
    with open(path, "rb", buffering=0) as handle:
        while True:
            read = handle.readinto(view)
            if not read:
                break
            digest.update(view[:read])
    return digest.digest()
