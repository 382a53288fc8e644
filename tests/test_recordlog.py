"""The RFC 9162 log against an independent reference, CT test vectors and pymerkle."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from loraledger.crypto.translog import (
    EMPTY_ROOT,
    ConsistencyProof,
    InclusionProof,
    MerkleLog,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from loraledger.errors import InputError, NotFoundError

# ------------------------------------------------------------------ reference (RFC text)
# RFC 9162 section 2.1, transcribed literally over tuples of leaf data. Memoised only to
# keep the exhaustive tests fast; no code is shared with loraledger.crypto.translog.


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@lru_cache(maxsize=None)
def ref_mth(d: tuple[bytes, ...]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + d[0])
    k = _k(n)
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    return ref_subproof(m, d, True)


# ---------------------------------------------------------------------------- fixtures

DATA = tuple(f"leaf {i}".encode() for i in range(71))


@pytest.fixture(scope="module")
def log70() -> MerkleLog:
    log = MerkleLog()
    for i, d in enumerate(DATA[:70]):
        assert log.append(d) == i
    return log


# Transparency-dev / certificate-transparency-go test vectors (RFC 6962 = RFC 9162 hashing).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
# (leaf index counting from 1, tree size, proof)
CT_INCLUSION = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hx(items: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in items]


@pytest.fixture(scope="module")
def ct_log() -> MerkleLog:
    log = MerkleLog()
    for d in CT_LEAVES:
        log.append(d)
    return log


# ------------------------------------------------------------------------- primitives


def test_hash_primitives_match_rfc_9162() -> None:
    assert EMPTY_ROOT == _sha256(b"") == bytes.fromhex(CT_ROOTS[0])
    assert leaf_hash(b"") == _sha256(b"\x00")
    assert leaf_hash(b"abc") == _sha256(b"\x00abc")
    left, right = leaf_hash(b"l"), leaf_hash(b"r")
    assert node_hash(left, right) == _sha256(b"\x01" + left + right)
    assert MerkleLog().root() == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    with pytest.raises(InputError):
        leaf_hash("text")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ CT vectors


def test_ct_vectors_roots_leaves_and_compact_ranges(ct_log: MerkleLog) -> None:
    assert ct_log.root().hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert [ct_log.root(n).hex() for n in range(9)] == CT_ROOTS
    assert [ct_log.leaf_hash(i).hex() for i in range(8)] == CT_LEAF_HASHES
    # compact ranges (transparency-dev testonly.CompactTrees): level and node of the right edge
    expected_levels = [[], [0], [1], [1, 0], [2], [2, 0], [2, 1], [2, 1, 0], [3]]
    for n in range(9):
        frontier = ct_log.frontier(n)
        assert [level for level, _ in frontier] == expected_levels[n]
        folded = EMPTY_ROOT
        for i, (_, h) in enumerate(reversed(frontier)):
            folded = h if i == 0 else node_hash(h, folded)
        assert folded == ct_log.root(n)
    state = ct_log.state(7)
    assert state["size"] == 7 and state["root"] == "0x" + CT_ROOTS[7]
    assert state["frontier"][-1] == {"level": 0, "hash": "0x" + CT_LEAF_HASHES[6]}
    assert ct_log.state()["root"] == "0x" + CT_ROOTS[8]


@pytest.mark.parametrize(("leaf", "size", "proof"), CT_INCLUSION)
def test_ct_vectors_inclusion(ct_log: MerkleLog, leaf: int, size: int, proof: list[str]) -> None:
    got = ct_log.inclusion_proof(leaf - 1, size)
    assert got.path == _hx(proof)
    assert got.leaf_hash == leaf_hash(CT_LEAVES[leaf - 1])
    assert got.verify(bytes.fromhex(CT_ROOTS[size]))
    assert inclusion_proof([leaf_hash(d) for d in CT_LEAVES], leaf - 1, size) == _hx(proof)
    _assert_inclusion_probes_fail(leaf - 1, size, _hx(proof), bytes.fromhex(CT_ROOTS[size]), got.leaf_hash)


@pytest.mark.parametrize(("size1", "size2", "proof"), CT_CONSISTENCY)
def test_ct_vectors_consistency(ct_log: MerkleLog, size1: int, size2: int, proof: list[str]) -> None:
    got = ct_log.consistency_proof(size1, size2)
    assert got.path == _hx(proof)
    root1, root2 = bytes.fromhex(CT_ROOTS[size1]), bytes.fromhex(CT_ROOTS[size2])
    assert got.verify(root1, root2)
    assert consistency_proof([leaf_hash(d) for d in CT_LEAVES], size1, size2) == _hx(proof)
    if proof:
        _assert_consistency_probes_fail(size1, size2, root1, root2, _hx(proof))


def _flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def _assert_inclusion_probes_fail(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes) -> None:
    """transparency-dev's corruptInclusionProof probes."""
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]),
        (index, size, root, leaf, [root, *proof]),
    ]
    for i in range(len(proof)):
        probes.append((index, size, root, leaf, [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    for probe in probes:
        i, n, r, lf, p = probe
        assert not verify_inclusion(lf, i, n, p, r), probe


def _assert_consistency_probes_fail(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]) -> None:
    """transparency-dev's corruptConsistencyProof probes."""
    probes = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, b"WrongRoot", root2, proof),
        (size1, size2, root1, b"WrongRoot", proof),
        (size1, size2, SOME_HASH, root2, proof),
        (size1, size2, root1, SOME_HASH, proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, [*proof, b""]),
        (size1, size2, root1, root2, [*proof, root1]),
        (size1, size2, root1, root2, [*proof, root2]),
        (size1, size2, root1, root2, [b"", *proof]),
        (size1, size2, root1, root2, [root1, *proof]),
        (size1, size2, root1, root2, [root2, *proof]),
        (size1, size2, root1, root2, [proof[0], *proof]),
        (size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        probes.append((size1, size2, root1, root2, [*proof[:i], _flip(proof[i], 4), *proof[i + 1 :]]))
    for probe in probes:
        assert not verify_consistency(*probe), probe


def test_consistency_edge_cases() -> None:
    r1, r2 = leaf_hash(b"1"), leaf_hash(b"2")
    # equal sizes: consistent iff same root and empty proof
    assert verify_consistency(1, 1, r1, r1, [])
    assert not verify_consistency(1, 1, r1, r2, [])
    assert not verify_consistency(1, 1, r1, r1, [EMPTY_ROOT])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, r1, r1, [])  # size 0 must come with the empty root
    # old size 0: trivially consistent, but the old root must be the empty tree's
    assert verify_consistency(0, 1, EMPTY_ROOT, r2, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, r2, [])
    assert not verify_consistency(0, 1, r1, r2, [])
    assert not verify_consistency(0, 1, EMPTY_ROOT, r2, [EMPTY_ROOT])
    # going back in time, empty proof for growth
    assert not verify_consistency(1, 0, r1, EMPTY_ROOT, [])
    assert not verify_consistency(2, 1, r1, r2, [])
    assert not verify_consistency(1, 2, r1, r2, [])
    log = MerkleLog()
    log.append(b"x")
    assert log.consistency_proof(0).path == [] and log.consistency_proof(1).path == []
    assert log.consistency_proof(0).verify(EMPTY_ROOT, log.root())
    assert MerkleLog().consistency_proof(0, 0).verify(EMPTY_ROOT, EMPTY_ROOT)


def test_inclusion_edge_cases() -> None:
    h = leaf_hash(b"data")
    # single entry: the root is the leaf hash, the proof is empty
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)
    for index, size in [(0, 0), (1, 0), (1, 1), (2, 1)]:
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    with pytest.raises(InputError):
        root_from_inclusion_proof(h, 1, 1, [])
    with pytest.raises(InputError, match="longer"):
        root_from_inclusion_proof(h, 0, 1, [h])
    with pytest.raises(InputError, match="shorter"):
        root_from_inclusion_proof(h, 0, 2, [])


@pytest.mark.parametrize(
    "bad",
    [None, "x", -1, True, 1.0, 2**64],
)
def test_verifiers_reject_malformed_arguments(bad: object) -> None:
    log = MerkleLog.from_leaf_hashes(leaf_hash(d) for d in DATA[:5])
    good = log.inclusion_proof(2)
    cons = log.consistency_proof(3)
    assert not verify_inclusion(good.leaf_hash, bad, 5, good.path, log.root())  # type: ignore[arg-type]
    assert not verify_inclusion(good.leaf_hash, 2, bad, good.path, log.root())  # type: ignore[arg-type]
    assert not verify_inclusion(bad, 2, 5, good.path, log.root())  # type: ignore[arg-type]
    assert not verify_inclusion(good.leaf_hash, 2, 5, good.path, bad)  # type: ignore[arg-type]
    assert not verify_inclusion(good.leaf_hash, 2, 5, [*good.path[:-1], bad], log.root())  # type: ignore[list-item]
    assert not verify_consistency(bad, 5, log.root(3), log.root(), cons.path)  # type: ignore[arg-type]
    assert not verify_consistency(3, bad, log.root(3), log.root(), cons.path)  # type: ignore[arg-type]
    assert not verify_consistency(3, 5, bad, log.root(), cons.path)  # type: ignore[arg-type]
    assert not verify_consistency(3, 5, log.root(3), log.root(), [*cons.path[:-1], bad])  # type: ignore[list-item]
    assert not verify_consistency(3, 5, log.root(3), log.root(), bad)  # type: ignore[arg-type]
    # and the genuine ones pass
    assert verify_inclusion(good.leaf_hash, 2, 5, good.path, log.root())
    assert verify_consistency(3, 5, log.root(3), log.root(), cons.path)


# ------------------------------------------------------------ exhaustive vs reference


def test_roots_every_size_0_to_70(log70: MerkleLog) -> None:
    for n in range(71):
        assert log70.root(n) == ref_mth(DATA[:n]), n
    log = MerkleLog()
    for n in range(71):
        assert log.root() == ref_mth(DATA[:n])
        log.append(DATA[n])


def test_inclusion_every_index_every_size_to_70(log70: MerkleLog) -> None:
    for n in range(1, 71):
        root = ref_mth(DATA[:n])
        for m in range(n):
            proof = log70.inclusion_proof(m, n)
            assert proof.path == ref_path(m, DATA[:n]), (m, n)
            assert proof.leaf_hash == leaf_hash(DATA[m])
            assert verify_inclusion(proof.leaf_hash, m, n, proof.path, root), (m, n)
            assert root_from_inclusion_proof(proof.leaf_hash, m, n, proof.path) == root
            # the proof is bound to its position and size (against that size's true root)
            assert not verify_inclusion(proof.leaf_hash, m, n, proof.path, SOME_HASH)
            if m + 1 < n:
                assert not verify_inclusion(proof.leaf_hash, m + 1, n, proof.path, root)
            if n < 70:
                assert not verify_inclusion(proof.leaf_hash, m, n + 1, proof.path, ref_mth(DATA[: n + 1]))


def test_consistency_every_pair_to_40(log70: MerkleLog) -> None:
    for n in range(0, 41):
        new_root = ref_mth(DATA[:n])
        for m in range(0, n + 1):
            old_root = ref_mth(DATA[:m])
            proof = log70.consistency_proof(m, n)
            expected = [] if m in (0, n) else ref_proof(m, DATA[:n])
            assert proof.path == expected, (m, n)
            assert verify_consistency(m, n, old_root, new_root, proof.path), (m, n)
            if 0 < m < n:
                assert not verify_consistency(m, n, old_root, SOME_HASH, proof.path)
                assert not verify_consistency(m, n, SOME_HASH, new_root, proof.path)
                assert not verify_consistency(m, n, new_root, old_root, proof.path)
                for i in range(len(proof.path)):
                    bad = [*proof.path[:i], _flip(proof.path[i]), *proof.path[i + 1 :]]
                    assert not verify_consistency(m, n, old_root, new_root, bad), (m, n, i)


def test_from_leaf_hashes_matches_appends(log70: MerkleLog) -> None:
    hashes = list(log70.leaf_hashes())
    assert hashes == [leaf_hash(d) for d in DATA[:70]]
    for n in range(71):
        rebuilt = MerkleLog.from_leaf_hashes(hashes[:n])
        assert rebuilt.size == n
        assert rebuilt._levels == MerkleLog.from_leaf_hashes(iter(hashes[:n]))._levels
        for size in range(n + 1):
            assert rebuilt.root(size) == log70.root(size)
        assert root_from_leaf_hashes(hashes[:n]) == log70.root(n)
    assert MerkleLog.from_leaf_hashes(hashes)._levels == log70._levels
    # appending after a rebuild keeps going
    rebuilt = MerkleLog.from_leaf_hashes(hashes[:33])
    for d in DATA[33:70]:
        rebuilt.append(d)
    assert rebuilt._levels == log70._levels


def test_memory_layout_is_two_hashes_per_leaf(log70: MerkleLog) -> None:
    # level k holds floor(n / 2**k) hashes: sum < 2n
    assert [len(level) // 32 for level in log70._levels] == [70, 35, 17, 8, 4, 2, 1]


# -------------------------------------------------------------------------- pymerkle


@pytest.fixture(scope="module")
def pm_tree():  # type: ignore[no-untyped-def]
    pymerkle = pytest.importorskip("pymerkle")
    tree = pymerkle.InmemoryTree(algorithm="sha256")  # security prefixes on: the default
    for d in DATA[:70]:
        tree.append_entry(d)
    return tree


def test_pymerkle_hashing_is_rfc_9162(pm_tree) -> None:  # type: ignore[no-untyped-def]
    import pymerkle

    assert pm_tree.security and pm_tree.leaf_prefix == b"\x00" and pm_tree.node_prefix == b"\x01"
    assert pm_tree.get_root(0) == EMPTY_ROOT
    ct = pymerkle.InmemoryTree(algorithm="sha256")
    for d in CT_LEAVES:
        ct.append_entry(d)
    assert ct.get_root().hex() == CT_ROOTS[8]
    # with security disabled it is not RFC 9162: roots differ
    insecure = pymerkle.InmemoryTree(algorithm="sha256", disable_security=True)
    for d in CT_LEAVES:
        insecure.append_entry(d)
    assert insecure.get_root().hex() != CT_ROOTS[8]


def test_pymerkle_roots_and_inclusion_agree(pm_tree, log70: MerkleLog) -> None:  # type: ignore[no-untyped-def]
    import pymerkle

    for n in range(0, 71):
        assert pm_tree.get_root(n) == log70.root(n), n
    for n in range(1, 71):
        for m in range(n):
            pm = pm_tree.prove_inclusion(m + 1, n)  # pymerkle counts leaves from 1
            ours = log70.inclusion_proof(m, n)
            # pymerkle's path starts with the leaf hash itself, then RFC 9162 PATH
            assert pm.path == [ours.leaf_hash, *ours.path], (m, n)
            pymerkle.verify_inclusion(ours.leaf_hash, log70.root(n), pm)
            assert verify_inclusion(pm.path[0], m, n, pm.path[1:], pm_tree.get_root(n))


def test_pymerkle_consistency_accepts_our_roots(pm_tree, log70: MerkleLog) -> None:  # type: ignore[no-untyped-def]
    """pymerkle's consistency paths are not RFC 9162 SUBPROOF lists (they always carry the
    base subtree and split differently when old_size is a subtree boundary), so only the
    roots can be compared: its proofs must verify against our roots."""
    import pymerkle

    for n in range(1, 41):
        for m in range(1, n + 1):
            pm = pm_tree.prove_consistency(m, n)
            pymerkle.verify_consistency(log70.root(m), log70.root(n), pm)
            with pytest.raises(pymerkle.InvalidProof):
                pymerkle.verify_consistency(SOME_HASH, log70.root(n), pm)


# ------------------------------------------------------------------------- hypothesis

BIG = 3000


@pytest.fixture(scope="module")
def big_log() -> MerkleLog:
    log = MerkleLog()
    for i in range(BIG):
        log.append(i.to_bytes(4, "big"))
    return log


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_inclusion_proofs_verify_and_tampering_fails(big_log: MerkleLog, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, BIG), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root = big_log.root(size)
    proof = big_log.inclusion_proof(index, size)
    assert proof.leaf_hash == leaf_hash(index.to_bytes(4, "big"))
    assert proof.verify(root)
    assert InclusionProof.from_dict(json.loads(json.dumps(proof.to_dict()))) == proof
    # tampered root
    assert not verify_inclusion(proof.leaf_hash, index, size, proof.path, _flip(root, data.draw(st.integers(0, 7))))
    # tampered leaf
    assert not verify_inclusion(_flip(proof.leaf_hash), index, size, proof.path, root)
    # tampered path element
    if proof.path:
        i = data.draw(st.integers(0, len(proof.path) - 1), label="element")
        bad = [*proof.path[:i], _flip(proof.path[i], data.draw(st.integers(0, 7))), *proof.path[i + 1 :]]
        assert not verify_inclusion(proof.leaf_hash, index, size, bad, root)
        assert not verify_inclusion(proof.leaf_hash, index, size, proof.path[:-1], root)
    assert not verify_inclusion(proof.leaf_hash, index, size, [*proof.path, SOME_HASH], root)
    # another index, or another size with that size's genuine root
    other = data.draw(st.integers(0, size - 1), label="other index")
    if other != index:
        assert not verify_inclusion(proof.leaf_hash, other, size, proof.path, root)
    other_size = data.draw(st.integers(index + 1, BIG), label="other size")
    if other_size != size:
        assert not verify_inclusion(proof.leaf_hash, index, other_size, proof.path, big_log.root(other_size))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_consistency_proofs_verify_and_tampering_fails(big_log: MerkleLog, data: st.DataObject) -> None:
    new_size = data.draw(st.integers(0, BIG), label="new size")
    old_size = data.draw(st.integers(0, new_size), label="old size")
    old_root, new_root = big_log.root(old_size), big_log.root(new_size)
    proof = big_log.consistency_proof(old_size, new_size)
    assert proof.verify(old_root, new_root)
    assert ConsistencyProof.from_dict(json.loads(json.dumps(proof.to_dict()))) == proof
    assume(0 < old_size < new_size)
    assert not verify_consistency(old_size, new_size, old_root, _flip(new_root), proof.path)
    assert not verify_consistency(old_size, new_size, _flip(old_root), new_root, proof.path)
    i = data.draw(st.integers(0, len(proof.path) - 1), label="element")
    bad = [*proof.path[:i], _flip(proof.path[i], data.draw(st.integers(0, 7))), *proof.path[i + 1 :]]
    assert not verify_consistency(old_size, new_size, old_root, new_root, bad)
    assert not verify_consistency(old_size, new_size, old_root, new_root, proof.path[:-1])
    assert not verify_consistency(old_size, new_size, old_root, new_root, [*proof.path, SOME_HASH])
    other = data.draw(st.integers(1, new_size), label="other old size")
    if other != old_size:
        assert not verify_consistency(other, new_size, big_log.root(other), new_root, proof.path)
    other_new = data.draw(st.integers(old_size + 1, BIG), label="other new size")
    if other_new != new_size:
        assert not verify_consistency(old_size, other_new, old_root, big_log.root(other_new), proof.path)


@settings(max_examples=40, deadline=None)
@given(
    leaves=st.lists(st.binary(max_size=40), max_size=300),
    data=st.data(),
)
def test_random_rebuild_matches_reference(leaves: list[bytes], data: st.DataObject) -> None:
    log = MerkleLog()
    for d in leaves:
        log.append(d)
    rebuilt = MerkleLog.from_leaf_hashes(leaf_hash(d) for d in leaves)
    assert rebuilt._levels == log._levels
    size = data.draw(st.integers(0, len(leaves)), label="size")
    assert rebuilt.root(size) == log.root(size) == ref_mth(tuple(leaves[:size]))
    if size:
        index = data.draw(st.integers(0, size - 1), label="index")
        assert rebuilt.inclusion_proof(index, size).path == ref_path(index, tuple(leaves[:size]))
        old = data.draw(st.integers(1, size), label="old")
        expected = [] if old == size else ref_proof(old, tuple(leaves[:size]))
        assert rebuilt.consistency_proof(old, size).path == expected


# ----------------------------------------------------------------------------- errors


def test_log_errors() -> None:
    log = MerkleLog.from_leaf_hashes(leaf_hash(d) for d in DATA[:5])
    with pytest.raises(NotFoundError):
        log.leaf_hash(5)
    with pytest.raises(NotFoundError):
        log.root(6)
    with pytest.raises(NotFoundError):
        log.inclusion_proof(5)
    with pytest.raises(NotFoundError):
        log.inclusion_proof(3, 3)
    with pytest.raises(NotFoundError):
        log.inclusion_proof(0, 6)
    with pytest.raises(NotFoundError):
        MerkleLog().inclusion_proof(0)
    with pytest.raises(NotFoundError):
        log.consistency_proof(2, 6)
    with pytest.raises(InputError, match="larger"):
        log.consistency_proof(4, 3)
    with pytest.raises(InputError):
        log.consistency_proof(6)  # old > current size: still "old > new"
    for bad in (-1, True, 1.5, "1", None):
        with pytest.raises(InputError):
            log.leaf_hash(bad)  # type: ignore[arg-type]
        with pytest.raises(InputError):
            log.inclusion_proof(bad)  # type: ignore[arg-type]
        with pytest.raises(InputError):
            log.consistency_proof(bad)  # type: ignore[arg-type]
    for bad_size in (-1, True, 1.5, "1"):
        with pytest.raises(InputError):
            log.root(bad_size)  # type: ignore[arg-type]
    for bad_hash in (b"", b"x" * 31, b"x" * 33, "00" * 32, None):
        with pytest.raises(InputError):
            log.append_leaf_hash(bad_hash)  # type: ignore[arg-type]
        with pytest.raises(InputError):
            MerkleLog.from_leaf_hashes([leaf_hash(b"a"), bad_hash])  # type: ignore[list-item]
    assert log.size == 5
    assert log.append_leaf_hash(bytearray(32)) == 5
    with pytest.raises(NotFoundError):
        inclusion_proof([leaf_hash(b"a")], 0, 2)
    with pytest.raises(NotFoundError):
        consistency_proof([leaf_hash(b"a")], 1, 2)


def test_proof_dicts_round_trip_and_reject_malformed() -> None:
    log = MerkleLog.from_leaf_hashes(leaf_hash(d) for d in DATA[:11])
    inc = log.inclusion_proof(7)
    d = inc.to_dict()
    assert d["index"] == 7 and d["size"] == 11 and d["leafHash"] == "0x" + inc.leaf_hash.hex()
    assert all(isinstance(h, str) and h.startswith("0x") and len(h) == 66 for h in d["path"])
    assert InclusionProof.from_dict(d) == inc
    con = log.consistency_proof(3)
    assert ConsistencyProof.from_dict(con.to_dict()) == con
    assert con.to_dict()["oldSize"] == 3 and con.to_dict()["newSize"] == 11
    bad_inclusions = [
        [],
        {**d, "index": -1},
        {**d, "index": 11},
        {**d, "size": "11"},
        {**d, "leafHash": d["leafHash"][2:]},
        {**d, "leafHash": "0x" + "zz" * 32},
        {**d, "path": "0x00"},
        {**d, "path": [*d["path"], "0x1234"]},
        {**d, "path": ["0x" + "00" * 32] * 129},
        {k: v for k, v in d.items() if k != "size"},
    ]
    for bad in bad_inclusions:
        with pytest.raises(InputError):
            InclusionProof.from_dict(bad)  # type: ignore[arg-type]
    c = con.to_dict()
    for bad in [{**c, "oldSize": 12}, {**c, "newSize": None}, {**c, "path": [None]}, "x"]:
        with pytest.raises(InputError):
            ConsistencyProof.from_dict(bad)  # type: ignore[arg-type]
    assert inc.root() == log.root()
