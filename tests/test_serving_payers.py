"""Payers' API keys: shown once, stored hashed, checked on every request, revocable; and the
`keys` commands of the CLI against a node's database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import cli_environment, deployed_settings
from sqlmodel import Session, select

from loraledger.errors import InputError, NotFoundError, Unauthorized
from loraledger.records.fields import parse_address
from loraledger.serving.payers import KEY_PREFIX, PayerKeys, key_hash
from loraledger.serving.tables import PayerKeyRow

PAYER = "0x" + "ab" * 20


def test_a_key_is_shown_once_and_stored_hashed(engine):
    keys = PayerKeys(engine, clock=lambda: 1000)
    row, key = keys.create(PAYER.lower(), label="team a")
    assert key.startswith(KEY_PREFIX) and len(key) >= 40
    with Session(engine) as session:
        stored = session.exec(select(PayerKeyRow)).one()
    assert stored.key_hash == key_hash(key) and key not in repr(stored.model_dump())
    assert stored.payer == parse_address(PAYER) and stored.label == "team a"  # EIP-55, whatever the case given
    assert keys.authenticate(key) == stored.payer
    assert row.prefix == key[:12]


@pytest.mark.parametrize("bad", [None, "", "sk-nope", KEY_PREFIX + "x" * 43, KEY_PREFIX + "y" * 500])
def test_missing_and_unknown_keys_are_refused(engine, bad):
    with pytest.raises(Unauthorized):
        PayerKeys(engine).authenticate(bad)


def test_a_revoked_key_is_refused(engine):
    keys = PayerKeys(engine, clock=lambda: 5)
    row, key = keys.create(PAYER)
    other, other_key = keys.create(PAYER)
    assert keys.revoke(row.id).revoked_at == 5
    assert keys.revoke(row.id).revoked_at == 5  # idempotent
    with pytest.raises(Unauthorized, match="revoked"):
        keys.authenticate(key)
    assert keys.authenticate(other_key) == other.payer
    with pytest.raises(NotFoundError):
        keys.revoke(999)
    with pytest.raises(InputError):
        keys.create("0xnot-an-address")
    with pytest.raises(InputError, match="label"):
        keys.create(PAYER, label="x" * 101)


def test_keys_cli(anvil, accounts, artifacts, tmp_path):
    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path)
    env = cli_environment(anvil.url, tmp_path, deployments=settings.deployments_dir)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "loraledger", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    created = cli("keys", "create", "--payer", accounts[5].address, "--label", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith(KEY_PREFIX) and "shown once" in created.stderr
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [(k["payer"], k["label"], k["revokedAt"]) for k in listed] == [(accounts[5].address, "ci", None)]
    assert key not in json.dumps(listed)
    assert cli("keys", "revoke", str(listed[0]["id"])).returncode == 0
    assert json.loads(cli("keys", "list", "--json").stdout)[0]["revokedAt"] is not None
    bad = cli("keys", "create", "--payer", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    missing = cli("keys", "revoke", "42")
    assert missing.returncode == 3 and "no API key 42" in missing.stderr
