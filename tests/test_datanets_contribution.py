"""EIP-712 signed datanet contributions: signing, recovery, refusals, cast and eth-account interop."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from loraledger.datanets.contribution import (
    CONTRIBUTION_TYPE,
    SECP256K1_N,
    Contribution,
    ContributionDomain,
    check_license,
    digest,
    parse_license,
    parse_signature,
    recover_signer,
    sign_contribution,
    typed_data,
    verify_contribution,
)
from loraledger.errors import InputError

KEY = "0x" + "42" * 32
OTHER_KEY = "0x" + "43" * 32
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_REGISTRY = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
NOW = 1_700_000_000


def _cast() -> str | None:
    local = Path(__file__).resolve().parents[1] / ".foundry" / "bin" / "cast"
    if local.is_file():
        return str(local)
    return shutil.which("cast")


@pytest.fixture
def account():
    return Account.from_key(KEY)


@pytest.fixture
def domain() -> ContributionDomain:
    return ContributionDomain(chain_id=31337, registry=REGISTRY.lower())


@pytest.fixture
def contribution(account) -> Contribution:
    return Contribution(
        datanet_id=7,
        contributor=account.address.lower(),
        content_hash=keccak(b"batch"),
        license="CC-BY-4.0",
        nonce=2**256 - 1,  # beyond 2**53: must survive JSON as a decimal string
        deadline=NOW + 3600,
    )


def _eip191_hash(signable) -> bytes:
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


# ------------------------------------------------------------------------------ round trip


def test_normalises_fields(contribution, domain, account):
    assert contribution.contributor == account.address
    assert contribution.content_hash == "0x" + keccak(b"batch").hex()
    assert domain.registry == REGISTRY


def test_typed_data_shape(domain, contribution):
    data = typed_data(domain, contribution)
    assert data["primaryType"] == "Contribution"
    assert [f["name"] for f in data["types"]["EIP712Domain"]] == ["name", "version", "chainId", "verifyingContract"]
    fields = ",".join(f"{f['type']} {f['name']}" for f in data["types"]["Contribution"])
    assert CONTRIBUTION_TYPE == f"Contribution({fields})"
    assert data["domain"] == {"name": "loraledger", "version": "1", "chainId": 31337, "verifyingContract": REGISTRY}
    assert data["message"]["nonce"] == str(2**256 - 1)
    json.dumps(data)  # JSON-ready


def test_digest_matches_eth_account(domain, contribution):
    assert digest(domain, contribution) == _eip191_hash(encode_typed_data(full_message=typed_data(domain, contribution)))


uint256 = st.integers(min_value=0, max_value=2**256 - 1)


@settings(max_examples=60, deadline=None)
@given(chain=st.integers(min_value=1, max_value=2**53 - 1), registry=st.binary(min_size=20, max_size=20),
       datanet=uint256, who=st.binary(min_size=20, max_size=20), content=st.binary(min_size=32, max_size=32),
       license=st.sampled_from(["MIT", "CC-BY-4.0", "Apache-2.0", "CC0-1.0"]), nonce=uint256, deadline=uint256)
def test_digest_matches_eth_account_for_any_fields(chain, registry, datanet, who, content, license, nonce, deadline):
    """The struct words written by hand (and the cached domain separator) are eth_account's EIP-712
    encoding at every width: zero, the uint256 limit, addresses with leading zero bytes."""
    domain = ContributionDomain(chain, "0x" + registry.hex())
    contribution = Contribution(datanet, "0x" + who.hex(), "0x" + content.hex(), license, nonce, deadline)
    expected = _eip191_hash(encode_typed_data(full_message=typed_data(domain, contribution)))
    assert digest(domain, contribution) == expected


def test_sign_recover_round_trip(account, domain, contribution):
    signature = sign_contribution(account, domain, contribution)
    assert signature.startswith("0x") and len(signature) == 132
    assert recover_signer(domain, contribution, signature) == account.address
    verify_contribution(domain, contribution, signature, now=NOW, used_nonce=lambda who, n: False)
    # a raw private key works too, and bytes signatures are accepted
    assert sign_contribution(KEY, domain, contribution) == signature
    verify_contribution(domain, contribution, bytes.fromhex(signature[2:]), now=NOW)


def test_eth_account_sign_typed_data_matches(account, domain, contribution):
    signed = Account.sign_typed_data(KEY, full_message=typed_data(domain, contribution))
    signature = "0x" + bytes(signed.signature).hex()
    assert signature == sign_contribution(account, domain, contribution)
    verify_contribution(domain, contribution, signature, now=NOW)
    assert Account.recover_message(encode_typed_data(full_message=typed_data(domain, contribution)), signature=signature) == account.address


def test_cast_wallet_sign_is_accepted(account, domain, contribution):
    cast = _cast()
    if cast is None:
        pytest.skip("cast (Foundry) is not installed")
    data = json.dumps(typed_data(domain, contribution))
    result = subprocess.run(
        [cast, "wallet", "sign", "--data", data, "--private-key", KEY],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    signature = result.stdout.strip()
    verify_contribution(domain, contribution, signature, now=NOW)
    assert signature.lower() == sign_contribution(account, domain, contribution).lower()


def test_v_zero_one_accepted(account, domain, contribution):
    signature = sign_contribution(account, domain, contribution)
    raw = bytearray.fromhex(signature[2:])
    raw[64] -= 27
    verify_contribution(domain, contribution, "0x" + raw.hex(), now=NOW)


# ------------------------------------------------------------------------------ refusals


def test_other_key_refused(domain, contribution):
    signature = sign_contribution(OTHER_KEY, domain, contribution)
    with pytest.raises(InputError, match=r"signed by 0x[0-9a-fA-F]{40}, not the contributor") as info:
        verify_contribution(domain, contribution, signature, now=NOW)
    assert info.value.details["signer"] == Account.from_key(OTHER_KEY).address


def test_wrong_chain_refused(account, domain, contribution):
    signature = sign_contribution(account, ContributionDomain(1, REGISTRY), contribution)
    with pytest.raises(InputError, match="wrong chain or registry"):
        verify_contribution(domain, contribution, signature, now=NOW)


def test_wrong_registry_refused(account, domain, contribution):
    signature = sign_contribution(account, ContributionDomain(31337, OTHER_REGISTRY), contribution)
    with pytest.raises(InputError, match="not the contributor.*wrong chain or registry"):
        verify_contribution(domain, contribution, signature, now=NOW)


def test_changed_message_refused(account, domain, contribution):
    signature = sign_contribution(account, domain, contribution)
    other = Contribution(7, account.address, keccak(b"other batch"), "CC-BY-4.0", 2**256 - 1, NOW + 3600)
    with pytest.raises(InputError, match="not the contributor"):
        verify_contribution(domain, other, signature, now=NOW)


def test_expired_deadline_refused(account, domain, contribution):
    signature = sign_contribution(account, domain, contribution)
    verify_contribution(domain, contribution, signature, now=contribution.deadline)  # inclusive
    with pytest.raises(InputError, match=rf"deadline {contribution.deadline} has passed") as info:
        verify_contribution(domain, contribution, signature, now=contribution.deadline + 1)
    assert info.value.details["field"] == "deadline"


def test_replayed_nonce_refused(account, domain, contribution):
    signature = sign_contribution(account, domain, contribution)
    used: set[tuple[str, int]] = set()
    verify_contribution(domain, contribution, signature, now=NOW, used_nonce=lambda who, n: (who, n) in used)
    used.add((contribution.contributor, contribution.nonce))
    with pytest.raises(InputError, match="already used"):
        verify_contribution(domain, contribution, signature, now=NOW, used_nonce=lambda who, n: (who, n) in used)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s[:-2], "65 bytes"),
        (lambda s: s[:130], "65 bytes"),  # 64 bytes: compact
        (lambda s: s + "00", "65 bytes"),
        (lambda s: s[:-1], "65 bytes"),  # odd number of hex digits
        (lambda s: s[:10] + "zz" + s[12:], "non-hex"),
        (lambda s: s[:-2] + "1d", "v must be 27 or 28"),
        (lambda s: "0x" + "00" * 32 + s[66:], "out of range"),
        (lambda s: "0x" + "", "65 bytes"),
    ],
)
def test_malformed_signature_refused(account, domain, contribution, mutate, message):
    signature = sign_contribution(account, domain, contribution)
    with pytest.raises(InputError, match=message):
        verify_contribution(domain, contribution, mutate(signature), now=NOW)


def test_high_s_signature_refused(account, domain, contribution):
    signature = sign_contribution(account, domain, contribution)
    v, r, s = parse_signature(signature)
    assert s <= SECP256K1_N // 2
    # the malleable twin: (r, n - s) with the other v recovers the same key...
    twin = r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    assert Account._recover_hash(digest(domain, contribution), signature=twin) == account.address
    # ...but is refused
    with pytest.raises(InputError, match="high s"):
        verify_contribution(domain, contribution, "0x" + twin.hex(), now=NOW)


def test_non_string_signature_refused(domain, contribution):
    with pytest.raises(InputError, match="hex string"):
        recover_signer(domain, contribution, 12345)


def test_bad_fields_refused(account):
    with pytest.raises(InputError, match="contributor"):
        Contribution(1, "0x1234", keccak(b"x"), "MIT", 0, 1)
    with pytest.raises(InputError, match="content_hash"):
        Contribution(1, account.address, b"short", "MIT", 0, 1)
    with pytest.raises(InputError, match="nonce"):
        Contribution(1, account.address, keccak(b"x"), "MIT", -1, 1)
    with pytest.raises(InputError, match="datanet_id"):
        Contribution(True, account.address, keccak(b"x"), "MIT", 0, 1)
    with pytest.raises(InputError, match="license"):
        Contribution(1, account.address, keccak(b"x"), "MIT OR Apache-2.0", 0, 1)
    with pytest.raises(InputError, match="chain_id"):
        ContributionDomain(0, REGISTRY)
    with pytest.raises(InputError, match="registry"):
        ContributionDomain(1, "not an address")


# ------------------------------------------------------------------------------ licences


def test_check_license_allowed():
    allowed = ["CC-BY-4.0", "MIT", "LicenseRef-Acme-Data-1.0"]
    assert check_license("CC-BY-4.0", allowed) == "CC-BY-4.0"
    assert check_license("cc-by-4.0", allowed) == "CC-BY-4.0"
    assert check_license("MIT", allowed) == "MIT"
    assert check_license("LicenseRef-Acme-Data-1.0", allowed) == "LicenseRef-Acme-Data-1.0"


def test_check_license_not_allowed_names_allowed():
    with pytest.raises(InputError, match="not allowed for this datanet; allowed: CC-BY-4.0, MIT") as info:
        check_license("Apache-2.0", ["CC-BY-4.0", "MIT"])
    assert info.value.details["allowed"] == ["CC-BY-4.0", "MIT"]


@pytest.mark.parametrize("bad", ["", "MIT OR Apache-2.0", "CC BY 4.0", "GPL/3", "LicenseRef-", "LicenseRef-a b", 5, None, "x" * 200])
def test_bad_license_shape_refused(bad):
    with pytest.raises(InputError, match="licen"):
        check_license(bad, ["MIT"])


def test_parse_license_canonical_case():
    assert parse_license("apache-2.0") == "Apache-2.0"
    assert parse_license("GPL-2.0+") == "GPL-2.0+"
    assert parse_license("licenseref-foo") == "LicenseRef-foo"


def test_check_license_bad_allowed_list():
    with pytest.raises(InputError, match="allows no licence"):
        check_license("MIT", [])
    with pytest.raises(InputError, match="list of SPDX ids"):
        check_license("MIT", "MIT")
