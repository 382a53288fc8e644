"""Files the node writes: published ones readable by others, secrets not."""

from __future__ import annotations

import stat

from eth_account import Account

from loraledger.chain.keys import write_keystore
from loraledger.epochs.store import EpochFileStore
from loraledger.fsutil import atomic_write_bytes


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_published_files_are_world_readable(tmp_path):
    store = EpochFileStore(tmp_path / "epochs")
    store.write(1, {"epoch": 1})
    assert _mode(store.path(1)) & 0o044 == 0o044  # group and others may read an epoch file (umask 022)
    atomic_write_bytes(tmp_path / "secret", b"x", mode=0o600)
    assert _mode(tmp_path / "secret") == 0o600


def test_keystores_stay_private(tmp_path):
    path = tmp_path / "operator.json"
    write_keystore(Account.create(), path, "pw")
    assert _mode(path) == 0o600
