"""Signing keys: from an environment variable or an encrypted JSON keystore.

A key is never printed, logged or put in an error message; errors name only where the
key was looked for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ..errors import ConfigError, InputError


def account_from_hex(secret: str, *, source: str) -> LocalAccount:
    """A ``LocalAccount`` from a hex private key; ``source`` names where it came from."""
    try:
        return Account.from_key(secret.strip())
    except Exception:  # noqa: BLE001 - any parse failure: never echo the value
        raise InputError(f"{source} does not hold a valid private key (expected 32 bytes of hex)") from None


def account_from_env(var: str) -> LocalAccount:
    secret = os.environ.get(var)
    if not secret:
        raise ConfigError(f"no private key: environment variable {var} is not set")
    return account_from_hex(secret, source=f"environment variable {var}")


def account_from_keystore(path: Path, password: str | None) -> LocalAccount:
    """Decrypt a Web3 secret-storage keystore file."""
    try:
        keystore = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"keystore file {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"keystore file {path} is not readable JSON ({type(exc).__name__})") from None
    if password is None:
        raise ConfigError(f"keystore {path} needs a password: set LORALEDGER_KEYSTORE_PASSWORD or enter it when asked")
    try:
        return Account.from_key(Account.decrypt(keystore, password))
    except ValueError:
        raise InputError(f"cannot decrypt keystore {path}: wrong password or corrupt file") from None


def write_keystore(account: LocalAccount, path: Path, password: str) -> None:
    """Encrypt ``account`` into a keystore file (mode 0600)."""
    from ..fsutil import atomic_write_json

    atomic_write_json(path, Account.encrypt(account.key, password), mode=0o600)  # a secret
    path.chmod(0o600)
