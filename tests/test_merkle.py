"""Tests for loraledger.crypto.merkle: interop with the real @openzeppelin/merkle-tree (node),
property tests (hypothesis) and input validation.

The JS tests run ``tests/js/oz_tree.cjs`` with node; most of them share one batched node
call (the session fixture ``js_batch``) so the whole file stays fast.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loraledger.crypto.merkle import (
    MultiProof,
    StandardMerkleTree,
    get_multi_proof,
    get_proof,
    hash_pair,
    is_valid_merkle_tree,
    make_merkle_tree,
    process_multi_proof,
    process_proof,
    render_merkle_tree,
    standard_leaf_hash,
    to_json_value,
)
from loraledger.crypto.merkle import hashing as merkle_hashing
from loraledger.errors import InputError, NotFoundError

ROOT = Path(__file__).resolve().parents[1]
JS_SCRIPT = ROOT / "tests" / "js" / "oz_tree.cjs"
NODE = shutil.which("node")
OZ_PKG = ROOT / "node_modules" / "@openzeppelin" / "merkle-tree" / "package.json"

_js_missing = (
    "node is not on PATH"
    if NODE is None
    else f"@openzeppelin/merkle-tree is not installed ({OZ_PKG} missing; run npm ci)"
    if not OZ_PKG.exists()
    else None
)
needs_js = [
    pytest.mark.node,
    pytest.mark.skipif(_js_missing is not None, reason=_js_missing or "node available"),
]

AU = ["address", "uint256"]


def _js(fn):
    """Mark a test as needing node + @openzeppelin/merkle-tree (skipped, with the reason,
    when either is missing)."""
    for mark in needs_js:
        fn = mark(fn)
    return fn


def run_js(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run a batch of jobs through the reference JS library (one node process)."""
    proc = subprocess.run(
        [NODE or "node", str(JS_SCRIPT)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == len(jobs)
    return results


# --------------------------------------------------------------------------------------
# datasets (deterministic), given in the canonical JSON form so that the JS dump, which
# keeps values exactly as given, must equal the Python dump byte for byte
# --------------------------------------------------------------------------------------


def _addr(rng: random.Random) -> str:
    return to_checksum_address(rng.randbytes(20))


def _b(rng: random.Random, n: int) -> str:
    return "0x" + rng.randbytes(n).hex()


def _gen(rng: random.Random, enc: list[str], n: int) -> list[list[Any]]:
    def field(t: str) -> Any:
        if t == "address[]":
            return [_addr(rng) for _ in range(rng.randrange(0, 4))]
        if t == "uint16[3]":
            return [str(rng.randrange(1 << 16)) for _ in range(3)]
        if t == "(uint256,address)[]":
            return [[str(rng.randrange(10**30)), _addr(rng)] for _ in range(rng.randrange(0, 3))]
        if t == "address":
            return _addr(rng)
        if t.startswith("uint"):
            bits = int(t[4:] or 256)
            return str(rng.choice([0, 1, (1 << bits) - 1, rng.randrange(1 << bits)]))
        if t.startswith("int"):
            bits = int(t[3:] or 256)
            return str(rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)))
        if t == "bool":
            return rng.random() < 0.5
        if t == "string":
            return rng.choice(["", "a", "hello world", "ünïcødé ✓ 🚀", "x" * 100]) + str(rng.random())
        if t == "bytes":
            return _b(rng, rng.choice([0, 1, 31, 32, 33, 100]))
        if t.startswith("bytes"):
            return _b(rng, int(t[5:]))
        raise AssertionError(t)

    return [[field(t) for t in enc] for _ in range(n)]


def _datasets() -> list[tuple[str, list[str], list[list[Any]], bool]]:
    rng = random.Random(20240601)
    out: list[tuple[str, list[str], list[list[Any]], bool]] = []
    for n in (1, 2, 3, 4, 5, 7, 16, 33, 300):
        out.append((f"address,uint256 n={n}", AU, _gen(rng, AU, n), True))
    encodings = [
        ["bytes32", "address"],
        ["string"],
        ["uint256"],
        ["bytes32"],
        ["string", "uint256", "bool"],
        ["address[]", "uint8"],
        ["int256", "bytes", "bytes4", "int8"],
        ["uint16[3]", "bool", "uint"],
        ["(uint256,address)[]", "bytes"],
    ]
    for enc in encodings:
        for n in (1, 6, 41):
            out.append((f"{','.join(enc)} n={n}", enc, _gen(rng, enc, n), True))
    # duplicates (allowed, as in OZ), unsorted layout
    dup = _gen(rng, AU, 9)
    dup += [dup[0], dup[3], dup[0]]
    out.append(("duplicates", AU, dup, True))
    out.append(("duplicates unsorted", AU, dup, False))
    out.append(("unsorted n=13", AU, _gen(rng, AU, 13), False))
    return out


DATASETS = _datasets()
IDS = [d[0] for d in DATASETS]


def _multiproof_sets(n: int, rng: random.Random) -> list[list[int]]:
    sets = [[], [0], list(range(n))]
    if n >= 2:
        sets.append([n - 1, 0])
    for _ in range(3):
        k = rng.randrange(1, n + 1)
        sets.append(rng.sample(range(n), k))
    return sets


@pytest.fixture(scope="session")
def py_trees() -> list[StandardMerkleTree]:
    return [StandardMerkleTree.of(v, enc, sort_leaves=s) for _, enc, v, s in DATASETS]


@pytest.fixture(scope="session")
def js_batch(py_trees: list[StandardMerkleTree]) -> dict[str, Any]:
    """One node call: JS ``of`` for every dataset, and JS ``load`` of every Python dump."""
    if _js_missing:
        pytest.skip(_js_missing)
    rng = random.Random(7)
    mps = [_multiproof_sets(len(v), rng) for _, _, v, _ in DATASETS]
    jobs: list[dict[str, Any]] = []
    for (_, enc, values, sort), mp in zip(DATASETS, mps):
        jobs.append(
            {
                "op": "of",
                "values": values,
                "leafEncoding": enc,
                "sortLeaves": sort,
                "proofs": "all",
                "multiproofs": mp,
            }
        )
    for tree, mp in zip(py_trees, mps):
        jobs.append({"op": "load", "dump": tree.dump(), "proofs": "all", "multiproofs": mp})
    res = run_js(jobs)
    k = len(DATASETS)
    return {"of": res[:k], "load": res[k:], "multiproofs": mps}


def _py_multiproof_json(tree: StandardMerkleTree, idx: list[int]) -> dict[str, Any]:
    return tree.get_multi_proof(idx).to_json()


# --------------------------------------------------------------------------------------
# interop with the JS library
# --------------------------------------------------------------------------------------


@_js
@pytest.mark.parametrize("k", range(len(DATASETS)), ids=IDS)
def test_js_of_matches_python(k: int, py_trees, js_batch) -> None:
    tree, js = py_trees[k], js_batch["of"][k]
    assert "error" not in js, js
    assert tree.root == js["root"]
    # values were given canonically, so the dumps are identical (tree, order, treeIndex)
    assert tree.dump() == js["dump"]
    assert tree.render() == js["render"]
    assert [tree.get_proof(i) for i in range(len(tree))] == js["proofs"]
    for idx, js_mp in zip(js_batch["multiproofs"][k], js["multiproofs"]):
        assert _py_multiproof_json(tree, idx) == js_mp


@_js
@pytest.mark.parametrize("k", range(len(DATASETS)), ids=IDS)
def test_js_loads_python_dump(k: int, py_trees, js_batch) -> None:
    tree, js = py_trees[k], js_batch["load"][k]
    assert "error" not in js, js  # JS load() ran validate() and it passed
    assert js["root"] == tree.root
    assert js["dump"] == tree.dump()
    assert js["proofs"] == [tree.get_proof(i) for i in range(len(tree))]
    for idx, js_mp in zip(js_batch["multiproofs"][k], js["multiproofs"]):
        assert _py_multiproof_json(tree, idx) == js_mp


@_js
@pytest.mark.parametrize("k", range(len(DATASETS)), ids=IDS)
def test_python_loads_js_dump(k: int, js_batch) -> None:
    js = js_batch["of"][k]
    tree = StandardMerkleTree.load(js["dump"])
    assert tree.root == js["root"]
    assert [tree.get_proof(i) for i in range(len(tree))] == js["proofs"]
    for idx, js_mp in zip(js_batch["multiproofs"][k], js["multiproofs"]):
        assert _py_multiproof_json(tree, idx) == js_mp
    # and the text form loads too
    assert StandardMerkleTree.load(json.dumps(js["dump"])).root == js["root"]


@_js
def test_js_accepts_other_input_forms_identically() -> None:
    """Lowercase/uppercase addresses, hex and JSON-number amounts, bytes values: Python
    normalises them and still matches JS, and Python loads JS dumps holding them."""
    rng = random.Random(3)
    values: list[list[Any]] = []
    for i in range(40):
        a = rng.randbytes(20).hex()
        addr = ["0x" + a, "0x" + a.upper(), to_checksum_address("0x" + a)][i % 3]
        amount = [rng.randrange(10**6), hex(rng.randrange(10**30)), str(rng.randrange(10**40))][i % 3]
        values.append([addr, amount])
    jobs = [{"op": "of", "values": values, "leafEncoding": AU, "proofs": "all", "valueProofs": values[:5]}]
    (js,) = run_js(jobs)
    assert "error" not in js, js
    tree = StandardMerkleTree.of(values, AU)
    assert tree.root == js["root"]
    assert [tree.get_proof(i) for i in range(len(tree))] == js["proofs"]
    assert [tree.get_proof(v) for v in values[:5]] == js["valueProofs"]
    loaded = StandardMerkleTree.load(js["dump"])  # JS dump keeps the raw forms
    assert loaded.root == tree.root
    assert loaded.dump() == tree.dump()
    # Python canonicalises: checksummed addresses, decimal amounts
    v0 = tree.dump()["values"][0]["value"]
    assert v0[0] == to_checksum_address(v0[0]) and v0[1].isdigit()


@_js
def test_js_verifies_python_proofs_and_rejects_tampered() -> None:
    rng = random.Random(11)
    values = _gen(rng, AU, 50)
    tree = StandardMerkleTree.of(values, AU)
    jobs: list[dict[str, Any]] = []
    expect: list[bool] = []
    for i in (0, 17, 49):
        proof = tree.get_proof(i)
        jobs.append({"op": "verify", "root": tree.root, "leafEncoding": AU, "value": values[i], "proof": proof})
        expect.append(True)
        bad = [values[i][0], str(int(values[i][1]) ^ 1)]
        jobs.append({"op": "verify", "root": tree.root, "leafEncoding": AU, "value": bad, "proof": proof})
        expect.append(False)
    for idx in ([1, 2, 3], [0, 49, 25, 7], list(range(50))):
        mp = tree.get_multi_proof(idx).to_json()
        jobs.append({"op": "verifyMultiProof", "root": tree.root, "leafEncoding": AU, "multiproof": mp})
        expect.append(True)
        if mp["proof"]:
            mp = dict(mp, proof=[mp["proof"][0][:-1] + ("0" if mp["proof"][0][-1] != "0" else "1")] + mp["proof"][1:])
            jobs.append({"op": "verifyMultiProof", "root": tree.root, "leafEncoding": AU, "multiproof": mp})
            expect.append(False)
    assert [r.get("ok", r) for r in run_js(jobs)] == expect


# --------------------------------------------------------------------------------------
# known answers without node (so regressions show even where node is missing)
# --------------------------------------------------------------------------------------


def test_leaf_hash_is_double_keccak_of_abi_encode() -> None:
    rng = random.Random(5)
    for enc in (AU, ["string", "uint256", "bool"], ["address[]", "uint8"], ["bytes", "int8"]):
        for value in _gen(rng, enc, 5):
            tree = StandardMerkleTree.of([value], enc)
            canon = tree.at(0)
            expected = keccak(keccak(abi_encode(enc, list(canon))))
            assert tree.leaf_hash(value) == "0x" + expected.hex() == tree.root
            assert standard_leaf_hash(enc, value) == expected


def test_known_root_matches_oz_readme_example() -> None:
    # Example from the @openzeppelin/merkle-tree README / test vectors, computed with JS
    values = [
        ["0x1111111111111111111111111111111111111111", "5000000000000000000"],
        ["0x2222222222222222222222222222222222222222", "2500000000000000000"],
    ]
    tree = StandardMerkleTree.of(values, AU)
    assert tree.root == "0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"


def test_layout_leaves_reversed_sorted_at_end() -> None:
    rng = random.Random(9)
    values = _gen(rng, AU, 10)
    tree = StandardMerkleTree.of(values, AU)
    nodes = tree.tree
    leaves = nodes[len(values) - 1 :]
    assert leaves == sorted(leaves, reverse=True)
    for i, v in tree.entries():
        assert nodes[tree.tree_index(i)] == tree.leaf_hash(v)
    unsorted = StandardMerkleTree.of(values, AU, sort_leaves=False)
    assert unsorted.tree[len(values) - 1 :] == [unsorted.leaf_hash(v) for v in values][::-1]
    assert [unsorted.tree_index(i) for i in range(10)] == list(range(18, 8, -1))


def test_api_surface() -> None:
    values = [["0x1111111111111111111111111111111111111111", 5], ["0x2222222222222222222222222222222222222222", "0x10"]]
    tree = StandardMerkleTree.of(values, AU)
    assert len(tree) == 2
    assert tree.leaf_encoding == AU
    assert list(tree.entries()) == [
        (0, ("0x1111111111111111111111111111111111111111", 5)),
        (1, ("0x2222222222222222222222222222222222222222", 16)),
    ]
    assert tree.at(1) == ("0x2222222222222222222222222222222222222222", 16)
    assert tree.leaf_lookup(["0x2222222222222222222222222222222222222222", 16]) == 1
    assert tree.get_proof(1) == tree.get_proof(values[1])
    assert tree.verify(0, tree.get_proof(0))
    assert tree.verify(values[0], tree.get_proof(0))
    assert not tree.verify(values[1], tree.get_proof(0))
    assert StandardMerkleTree.verify(tree.root, AU, values[0], tree.get_proof(0))
    mp = tree.get_multi_proof([1, values[0]])
    assert isinstance(mp, MultiProof)
    assert tree.verify_multi_proof(mp)
    assert tree.verify_multi_proof(mp.to_json())
    assert StandardMerkleTree.verify_multi_proof(tree.root, AU, mp.to_json())
    assert StandardMerkleTree.verify_multi_proof(tree.root_bytes, AU, mp)
    assert "StandardMerkleTree(root=0x" in repr(tree)
    tree.validate()
    d = tree.dump()
    assert d["format"] == "standard-v1" and d["values"][1] == {
        "value": ["0x2222222222222222222222222222222222222222", "16"],
        "treeIndex": d["values"][1]["treeIndex"],
    }
    json.dumps(d)  # JSON-safe


def test_duplicates_lookup_last_wins_and_multiproof_refuses_same_index() -> None:
    v = ["0x1111111111111111111111111111111111111111", 1]
    tree = StandardMerkleTree.of([v, ["0x2222222222222222222222222222222222222222", 2], v], AU)
    assert tree.leaf_lookup(v) == 2
    assert tree.verify(0, tree.get_proof(0)) and tree.verify(2, tree.get_proof(2))
    assert tree.get_proof(0) != tree.get_proof(2)  # distinct leaves, same hash
    assert tree.verify_multi_proof(tree.get_multi_proof([0, 2]))
    with pytest.raises(InputError, match="duplicated"):
        tree.get_multi_proof([v, v])


def test_core_helpers() -> None:
    rng = random.Random(1)
    leaves = [rng.randbytes(32) for _ in range(7)]
    tree = make_merkle_tree(leaves)
    assert len(tree) == 13 and is_valid_merkle_tree(tree)
    assert is_valid_merkle_tree(["0x" + x.hex() for x in tree])
    assert tree[12] == leaves[0] and tree[6] == leaves[6]
    assert tree[5] == hash_pair(tree[11], tree[12]) == hash_pair("0x" + tree[12].hex(), tree[11])
    for i in range(6, 13):
        assert process_proof(tree[i], get_proof(tree, i)) == tree[0]
    mp = get_multi_proof(tree, [12, 6, 9])
    assert mp.leaves == [tree[12], tree[9], tree[6]]
    assert process_multi_proof(mp) == tree[0]
    assert process_multi_proof(mp.to_json()) == tree[0]
    assert get_multi_proof(tree, []).proof == [tree[0]]
    assert process_multi_proof(get_multi_proof(tree, [])) == tree[0]
    assert render_merkle_tree(tree).splitlines()[0] == "0) 0x" + tree[0].hex()
    bad = list(tree)
    bad[3] = bytes(32)
    assert not is_valid_merkle_tree(bad)
    assert not is_valid_merkle_tree([])
    assert not is_valid_merkle_tree(tree[:-1])
    with pytest.raises(InputError, match="not a leaf"):
        get_proof(tree, 2)
    with pytest.raises(InputError, match="not a leaf"):
        get_multi_proof(tree, [13])
    with pytest.raises(InputError, match="duplicated"):
        get_multi_proof(tree, [7, 7])
    with pytest.raises(InputError, match="non-zero"):
        make_merkle_tree([])
    with pytest.raises(InputError, match="32-byte"):
        make_merkle_tree([b"short"])
    with pytest.raises(InputError, match="not compatible"):
        process_multi_proof(MultiProof([tree[12]], [], [True, True]))
    with pytest.raises(InputError, match="Invalid multiproof format"):
        process_multi_proof(MultiProof([tree[12], tree[11]], [], [False]))


def test_keccak_fallback_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    h, hh = merkle_hashing._new_hashers()
    assert h(b"abc") == keccak(b"abc") and hh(b"abc") == keccak(keccak(b"abc"))
    monkeypatch.setattr(merkle_hashing, "_RAW_KECCAK", None)
    h2, hh2 = merkle_hashing._new_hashers()
    assert h2(b"x" * 300) == keccak(b"x" * 300) and hh2(b"") == keccak(keccak(b""))
    monkeypatch.undo()
    values = _gen(random.Random(2), AU, 3000)
    expected = StandardMerkleTree.of(values, AU).root
    with ThreadPoolExecutor(4) as pool:
        roots = list(pool.map(lambda _: StandardMerkleTree.of(values, AU).root, range(8)))
    assert roots == [expected] * 8


# --------------------------------------------------------------------------------------
# property tests
# --------------------------------------------------------------------------------------

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
amounts = st.integers(min_value=0, max_value=2**256 - 1)
au_values = st.lists(st.tuples(addresses, amounts), min_size=1, max_size=40)
mixed_values = st.lists(
    st.tuples(
        st.text(max_size=20).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
        st.integers(-(2**255), 2**255 - 1),
        st.booleans(),
    ),
    min_size=1,
    max_size=25,
)
PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _flip(h: str) -> str:
    return h[:-1] + ("0" if h[-1] != "0" else "1")


@PROPS
@given(values=au_values, sort=st.booleans(), data=st.data())
def test_prop_proofs_verify_and_tampering_fails(values, sort, data) -> None:
    tree = StandardMerkleTree.of(values, AU, sort_leaves=sort)
    tree.validate()
    for i, v in enumerate(values):
        proof = tree.get_proof(i)
        assert tree.verify(i, proof)
        assert StandardMerkleTree.verify(tree.root, AU, v, proof)
        if proof:
            j = data.draw(st.integers(0, len(proof) - 1))
            assert not StandardMerkleTree.verify(tree.root, AU, v, proof[:j] + [_flip(proof[j])] + proof[j + 1 :])
        wrong = (v[0], (v[1] + 1) % 2**256)
        if wrong not in values:
            assert not StandardMerkleTree.verify(tree.root, AU, wrong, proof)
    loaded = StandardMerkleTree.load(json.loads(json.dumps(tree.dump())))
    assert loaded.root == tree.root and loaded.dump() == tree.dump()


@PROPS
@given(values=au_values, data=st.data())
def test_prop_multiproofs_verify_and_tampering_fails(values, data) -> None:
    tree = StandardMerkleTree.of(values, AU)
    idx = data.draw(st.lists(st.integers(0, len(values) - 1), unique=True))
    mp = tree.get_multi_proof(idx)
    assert len(mp.leaves) == len(idx)
    assert tree.verify_multi_proof(mp)
    assert StandardMerkleTree.verify_multi_proof(tree.root, AU, json.loads(json.dumps(mp.to_json())))
    if mp.proof:
        j = data.draw(st.integers(0, len(mp.proof) - 1))
        bad = MultiProof(mp.leaves, mp.proof[:j] + [_flip(mp.proof[j])] + mp.proof[j + 1 :], mp.proof_flags)
        assert not tree.verify_multi_proof(bad)
    if mp.leaves:
        a, amount = mp.leaves[0]
        wrong = (a, (amount + 1) % 2**256)
        if all(v != wrong for _, v in tree.entries()):
            bad = MultiProof([wrong] + mp.leaves[1:], mp.proof, mp.proof_flags)
            assert not tree.verify_multi_proof(bad)
    if mp.proof_flags and len(set(values)) == len(values):  # duplicates are symmetric
        flipped = [not f for f in mp.proof_flags]
        bad = MultiProof(mp.leaves, mp.proof, flipped)
        try:
            assert not tree.verify_multi_proof(bad)
        except InputError:
            pass  # structurally impossible proof: refused, as JS throws


@PROPS
@given(values=mixed_values, data=st.data())
def test_prop_mixed_types(values, data) -> None:
    enc = ["string", "int256", "bool"]
    tree = StandardMerkleTree.of(values, enc)
    for i, v in enumerate(values):
        assert StandardMerkleTree.verify(tree.root, enc, v, tree.get_proof(i))
    idx = data.draw(st.lists(st.integers(0, len(values) - 1), unique=True))
    assert tree.verify_multi_proof(tree.get_multi_proof(idx))
    assert StandardMerkleTree.load(tree.dump()).root == tree.root


@PROPS
@given(leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=50), data=st.data())
def test_prop_core_multiproof_roundtrip(leaves, data) -> None:
    tree = make_merkle_tree(leaves)
    n = len(leaves)
    idx = data.draw(st.lists(st.integers(n - 1, 2 * n - 2), unique=True))
    assert process_multi_proof(get_multi_proof(tree, idx)) == tree[0]


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

GOOD = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
BAD_CHECKSUM = "0x5B38Da6a701c568545dCfcB03FcB875f56beddc4"


@pytest.mark.parametrize(
    ("enc", "field", "match"),
    [
        (AU, ["0x123", 1], r"values\[1\]\[0\].*invalid address '0x123'"),
        (AU, ["0x" + "zz" * 20, 1], "40 hex digits"),
        (AU, [GOOD[2:], 1], "40 hex digits"),
        (AU, ["0x" + "ab" * 19 + " a", 1], "40 hex digits"),
        (AU, [BAD_CHECKSUM, 1], "EIP-55 checksum"),
        (AU, [b"\x01" * 19, 1], "invalid address"),
        (AU, [12345, 1], "invalid address"),
        (AU, [GOOD, -1], r"values\[1\]\[1\].*uint256: -1 is negative"),
        (AU, [GOOD, 2**256], r"out of range \(0 to 2\*\*256-1\)"),
        (AU, [GOOD, 1.5], "expected an integer.*float"),
        (AU, [GOOD, 2.0], "expected an integer.*float"),
        (AU, [GOOD, True], "expected an integer.*bool"),
        (AU, [GOOD, None], "expected an integer"),
        (AU, [GOOD, "abc"], "invalid uint256 'abc'"),
        (AU, [GOOD, "1_000"], "invalid uint256"),
        (AU, [GOOD, " 5"], "invalid uint256"),
        (AU, [GOOD, ""], "invalid uint256"),
        (AU, [GOOD, "-0x5"], "invalid uint256"),
        (AU, [GOOD, "9" * 5000], "out of range"),
        (["uint8"], [256], r"out of range \(0 to 2\*\*8-1\)"),
        (["int8"], [-129], r"out of range \(-2\*\*7 to 2\*\*7-1\)"),
        (["int8"], [128], "out of range"),
        (["bytes32"], [b"\x00" * 31], "exactly 32 bytes"),
        (["bytes32"], ["0x" + "00" * 31], "exactly 32 bytes"),
        (["bytes4"], ["0x123"], "exactly 4 bytes"),
        (["bytes"], ["0x123"], "even number of hex digits"),
        (["bytes"], ["abcd"], "even number of hex digits"),
        (["bool"], [1], "expected True or False"),
        (["bool"], ["yes"], "expected True or False"),
        (["string"], [b"bytes"], "expected str"),
        (["string"], ["\ud800"], "lone surrogate"),
        (["address[]"], ["0x" + "11" * 20], "expected a list"),
        (["uint16[3]"], [[1, 2]], "exactly 3 elements"),
        (["address[]"], [[GOOD, "0x12"]], r"values\[0\]\[0\]\[1\]: invalid address"),
        (["(uint256,address)[]"], [[[1, GOOD], [2]]], r"\[0\]\[1\]: invalid \(uint256,address\)"),
    ],
)
def test_bad_field_values(enc, field, match) -> None:
    # a valid first row for (address, uint256) so the message must name values[1]
    values = [[GOOD, 1], field] if enc == AU else [field]
    with pytest.raises(InputError, match=match) as exc:
        StandardMerkleTree.of(values, enc)
    assert isinstance(exc.value, ValueError)  # InputError is also a ValueError


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([], "Expected non-zero number of leaves"),
        ([[GOOD, 1, 2]], r"values\[0\]: expected a list or tuple of 2 fields \(address, uint256\), got 3 fields"),
        ([[GOOD]], "got 1 field$"),
        ([GOOD], "got str"),
        ([{"a": 1}], "got dict"),
        ("0xabc", "values must be a list"),
        (None, "values must be a list"),
    ],
)
def test_bad_values_shape(values, match) -> None:
    with pytest.raises(InputError, match=match):
        StandardMerkleTree.of(values, AU)


@pytest.mark.parametrize(
    ("enc", "match"),
    [
        ("address", "must be a list of ABI type strings"),
        ([], "is empty"),
        (["uint7"], "entry 0 'uint7' is not a supported ABI type"),
        (["address", "foo"], "entry 1 'foo'"),
        (["fixed128x18"], "not supported"),
        (["bytes33"], "not a supported ABI type"),
        ([123], "must be an ABI type string"),
        ([["address"]], "must be an ABI type string"),
    ],
)
def test_bad_leaf_encoding(enc, match) -> None:
    with pytest.raises(InputError, match=match):
        StandardMerkleTree.of([[1]], enc)


def test_bad_sort_leaves() -> None:
    with pytest.raises(InputError, match="sort_leaves"):
        StandardMerkleTree.of([[GOOD, 1]], AU, sort_leaves="no")  # type: ignore[arg-type]


def test_lookup_and_index_errors() -> None:
    tree = StandardMerkleTree.of([[GOOD, 1], ["0x" + "22" * 20, 2]], AU)
    with pytest.raises(NotFoundError, match="Leaf is not in tree"):
        tree.leaf_lookup([GOOD, 3])
    with pytest.raises(NotFoundError):
        tree.get_proof([GOOD, 3])
    with pytest.raises(InputError, match="invalid address"):
        tree.get_proof(["0x12", 3])
    for bad in (2, -1):
        with pytest.raises(InputError, match="Index out of bounds"):
            tree.get_proof(bad)
    with pytest.raises(InputError, match="got a bool"):
        tree.get_proof(True)
    with pytest.raises(InputError, match="value index"):
        tree.get_proof("0")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Index out of bounds"):
        tree.get_multi_proof([0, 5])
    with pytest.raises(InputError, match="32-byte hash"):
        tree.verify(0, ["0x1234"])
    with pytest.raises(InputError, match="32-byte hash"):
        StandardMerkleTree.verify("0xabc", AU, [GOOD, 1], [])
    with pytest.raises(InputError, match="list of 32-byte hashes"):
        tree.verify(0, "0x" + "00" * 32)
    with pytest.raises(InputError, match="multiproof"):
        tree.verify_multi_proof({"leaves": [], "proof": []})
    with pytest.raises(InputError, match=r"multiproof leaves\[0\]\[1\]"):
        tree.verify_multi_proof({"leaves": [[GOOD, -1]], "proof": [], "proofFlags": []})


def _dump() -> dict[str, Any]:
    return StandardMerkleTree.of(_gen(random.Random(4), AU, 5), AU).dump()


def _swap_tree_indices(d: dict[str, Any]) -> None:
    a, b = d["values"][0], d["values"][1]
    a["treeIndex"], b["treeIndex"] = b["treeIndex"], a["treeIndex"]


def _mut(fn) -> dict[str, Any]:
    d = json.loads(json.dumps(_dump()))
    fn(d)
    return d


@pytest.mark.parametrize(
    ("dump", "match"),
    [
        (_mut(lambda d: d.update(format="standard-v2")), "Unknown format 'standard-v2'"),
        (_mut(lambda d: d.pop("format")), "Unknown format None"),
        (_mut(lambda d: d.pop("leafEncoding")), "Expected leaf encoding"),
        (_mut(lambda d: d.update(leafEncoding=["address", "uint7"])), "dump leafEncoding.*uint7"),
        (_mut(lambda d: d.update(leafEncoding="address")), "dump leafEncoding must be a list"),
        (_mut(lambda d: d["tree"].__setitem__(8, "0x" + "00" * 32)), r"values\[\d\] hashes to .* but tree\[8\]"),
        (_mut(lambda d: d["tree"].__setitem__(1, "0x" + "00" * 32)), r"tree\[1\] is not the hash of its children"),
        (_mut(lambda d: d["tree"].__setitem__(2, "0xzz")), r"dump tree\[2\]: expected a 32-byte hash"),
        (_mut(lambda d: d["tree"].pop()), "dump tree has 8 nodes but 5 values need 9"),
        (_mut(lambda d: d.update(tree="0x")), "dump tree: expected a list"),
        (_mut(lambda d: d.update(values=[])), "Expected non-zero number of leaves"),
        (_mut(lambda d: d.update(values={})), "dump values must be a list"),
        (_mut(lambda d: d["values"][0].update(treeIndex=0)), r"values\[0\].treeIndex must be a leaf position between 4 and 8"),
        (_mut(lambda d: d["values"][0].update(treeIndex="5")), r"treeIndex must be a leaf position"),
        (_mut(lambda d: d["values"][1].update(treeIndex=d["values"][0]["treeIndex"])), "used by another value"),
        (_mut(lambda d: d["values"][2].pop("treeIndex")), r"values\[2\] must be an object"),
        (_mut(lambda d: d["values"][3].update(value=["0x12", "1"])), r"dump values\[3\].value\[0\]: invalid address"),
        (_mut(lambda d: d["values"][3]["value"].__setitem__(1, "-1")), r"dump values\[3\].value\[1\]: invalid uint256: -1 is negative"),
        (_mut(lambda d: d["values"][3]["value"].__setitem__(1, str((int(d["values"][3]["value"][1]) + 1) % 2**256))), r"does not match its values: values\[3\]"),
        (_mut(_swap_tree_indices), r"does not match its values: values\[0\]"),
        ("{not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_load_rejects_bad_dumps(dump, match) -> None:
    with pytest.raises(InputError, match=match):
        StandardMerkleTree.load(dump)


def test_load_accepts_int_forms_and_validates() -> None:
    d = _dump()
    for i, entry in enumerate(d["values"]):
        amount = int(entry["value"][1])
        entry["value"][1] = [amount, hex(amount), str(amount)][i % 3]
        entry["value"][0] = entry["value"][0].lower()
    tree = StandardMerkleTree.load(d)
    assert tree.dump() == _dump()


def test_to_json_value() -> None:
    assert to_json_value((GOOD, 5, b"\x01", True, "s", [1, (2,)])) == [GOOD, "5", "0x01", True, "s", ["1", ["2"]]]
    with pytest.raises(InputError):
        to_json_value(1.5)
