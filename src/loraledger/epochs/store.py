"""Epoch files on disk: ``<dir>/<n>.json``, the public record of each sealed epoch.

Files are written atomically and never rewritten with other content once their epoch is
sealed in the database: a sealed epoch is final.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import LedgerError, NotFoundError
from ..fsutil import atomic_write_json, atomic_write_stream

_EPOCH_FILE = re.compile(r"^(\d+)\.json$")


class EpochFileStore:
    """A directory of epoch files, numbered from 1 without gaps."""

    def __init__(self, directory: Path):
        self.directory = directory

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
