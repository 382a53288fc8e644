"""Epoch files on disk: ``<dir>/<n>.json``, the public record of each sealed epoch, and
``<dir>/chunks/<keccak256 hex>.json``, the content-addressed chunks of epochs too large to
publish as one file (``epochs.file``: a chunked epoch's ``<n>.json`` is its manifest).

Files are written atomically and never rewritten with other content once their epoch is
sealed in the database: a sealed epoch is final. Chunks are written before their manifest; a
chunk left by a seal that crashed is the same bytes under the same name when the seal runs again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..crypto.merkle.hashing import keccak256
from ..errors import InputError, LedgerError, NotFoundError
from ..fsutil import atomic_write_bytes, atomic_write_json, atomic_write_stream
from .file import CHUNK_HASH, EpochChunk

_EPOCH_FILE = re.compile(r"^(\d+)\.json$")
#: An epoch whose records' canonical JSON reaches this many bytes is written in chunks.
DEFAULT_MAX_FILE_BYTES = 100_000_000
#: Records per chunk, in bytes of canonical JSON (a chunk closes at the first record past it).
DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024


class EpochFileStore:
    """A directory of epoch files, numbered from 1 without gaps; epochs of ``max_file_bytes`` of
    records or more are split into chunks of about ``chunk_bytes``."""

    def __init__(self, directory: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        if max_file_bytes <= 0 or chunk_bytes <= 0:
            raise InputError(f"epoch file sizes must be positive, got {max_file_bytes} and {chunk_bytes}")
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self.chunk_bytes = chunk_bytes

    def splits(self, record_bytes: int) -> bool:
        """Whether an epoch with ``record_bytes`` of records is written as chunks and a manifest."""
        return record_bytes >= self.max_file_bytes

    def chunk_path(self, chunk_hash: str) -> Path:
        """Where the chunk with ``chunk_hash`` lives; only a well-formed hash names a path."""
        if not isinstance(chunk_hash, str) or not CHUNK_HASH.fullmatch(chunk_hash):
            raise InputError(f"a chunk hash is 0x followed by 64 lowercase hex digits, got {str(chunk_hash)[:80]!r}")
        return self.directory / "chunks" / f"{chunk_hash[2:]}.json"

    def read_chunk(self, chunk_hash: str) -> bytes:
        """The bytes of chunk ``chunk_hash`` (checked against the hash by :func:`epoch_records`)."""
        path = self.chunk_path(chunk_hash)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no chunk {chunk_hash}: {path} does not exist") from None
        except OSError as exc:
            raise LedgerError(f"chunk file {path} is unreadable ({type(exc).__name__})") from None

    def write_chunk(self, chunk: EpochChunk) -> Path:
        """Write ``chunk`` under its hash, atomically; a file already there with those bytes is kept."""
        path = self.chunk_path(chunk.hash)
        try:
            if keccak256(path.read_bytes()) == bytes.fromhex(chunk.hash[2:]):
                return path
        except OSError:
            pass
        atomic_write_bytes(path, chunk.data)
        return path

    def path(self, epoch: int) -> Path:
        return self.directory / f"{epoch}.json"

    def numbers(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        numbers = sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _EPOCH_FILE.match(p.name)))
        if numbers != list(range(1, len(numbers) + 1)):
            raise LedgerError(f"epoch files in {self.directory} have gaps: {numbers}")
        return numbers

    def latest(self) -> int:
        """Number of the newest epoch file (0 when there is none)."""
        numbers = self.numbers()
        return numbers[-1] if numbers else 0

    def read(self, epoch: int) -> dict[str, Any]:
        path = self.path(epoch)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"no epoch {epoch}: {path} does not exist") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise LedgerError(f"epoch file {path} is unreadable ({type(exc).__name__})") from None

    def read_all(self) -> list[dict[str, Any]]:
        return [self.read(n) for n in self.numbers()]

    def write_stream(self, epoch: int, pieces: Iterable[bytes]) -> Path:
        """Write epoch ``epoch``'s file from ``pieces`` (its bytes in order) atomically: a temporary
        file, fsync, rename. Replaces a file left without a database row (as ``write(replace=True)``)."""
        if not self.path(epoch).exists() and epoch != self.latest() + 1:
            raise LedgerError(f"cannot write epoch {epoch}: the newest epoch file is {self.latest()}")
        return atomic_write_stream(self.path(epoch), pieces)

    def write(self, epoch: int, content: dict[str, Any], *, replace: bool = False, compact: bool = False) -> Path:
        """Write epoch ``epoch`` atomically. An existing file must hold the same content,
        unless ``replace`` (the caller knows the file is not authoritative: no database row)."""
        path = self.path(epoch)
        if path.exists():
            if self.read(epoch) == content:
                return path
            if not replace:
                raise LedgerError(f"epoch {epoch} is already sealed in {path} with other content")
        elif epoch != self.latest() + 1:
            raise LedgerError(f"cannot write epoch {epoch}: the newest epoch file is {self.latest()}")
        atomic_write_json(path, content, compact=compact)
        return path
