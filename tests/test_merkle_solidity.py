"""Proofs and multiproofs from the Python StandardMerkleTree verify in Solidity.

A harness contract exposing OpenZeppelin's ``MerkleProof.verifyCalldata`` and
``multiProofVerifyCalldata`` is compiled by the project's solc and deployed to anvil;
leaf hashes are computed by Solidity itself from the typed values.
"""

from __future__ import annotations

import random

import pytest

from loraledger.chain.compile import compile_contracts
from loraledger.crypto.merkle import StandardMerkleTree


def b32(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str.removeprefix("0x"))


@pytest.fixture(scope="module")
def harness(anvil, accounts, project_root):
    from loraledger.chain.client import ChainClient

    artifact = compile_contracts(project_root, project_root / "scripts" / "solc", directories=("contracts/test/harness",))["MerkleHarness"]
    client = ChainClient(anvil.url)
    address, _ = client.deploy(accounts[0], artifact)
    return client.contract(address, artifact.abi)


def random_address(rng: random.Random) -> str:
    return "0x" + rng.randbytes(20).hex()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 257])
def test_reward_tree_proofs_verify_in_solidity(harness, size):
    rng = random.Random(size)
    values = [[random_address(rng), rng.randrange(1, 10**30)] for _ in range(size)]
    tree = StandardMerkleTree.of(values, ["address", "uint256"])
    for index in sorted(rng.sample(range(size), min(size, 12))):
        account, amount = tree.at(index)
        leaf = harness.functions.rewardLeaf(account, int(amount)).call()
        assert "0x" + leaf.hex() == tree.leaf_hash(tree.at(index))
        proof = [b32(p) for p in tree.get_proof(index)]
        assert harness.functions.verify(proof, tree.root_bytes, leaf).call() is True
        # the same proof does not prove another amount
        wrong = harness.functions.rewardLeaf(account, int(amount) + 1).call()
        assert harness.functions.verify(proof, tree.root_bytes, wrong).call() is False


@pytest.mark.parametrize("size,picks", [(2, 2), (9, 3), (64, 10), (300, 40)])
def test_multiproofs_verify_in_solidity(harness, size, picks):
    rng = random.Random(size * 31 + picks)
    values = [[random_address(rng), rng.randrange(1, 10**24)] for _ in range(size)]
    tree = StandardMerkleTree.of(values, ["address", "uint256"])
    chosen = rng.sample(range(size), picks)
    multi = tree.get_multi_proof(chosen)
    leaves = [harness.functions.rewardLeaf(a, int(v)).call() for a, v in multi.leaves]
    proof = [b32(p) for p in multi.proof]
    assert harness.functions.multiProofVerify(proof, multi.proof_flags, tree.root_bytes, leaves).call() is True
    account, amount = multi.leaves[0]
    tampered = [harness.functions.rewardLeaf(account, int(amount) + 1).call(), *leaves[1:]]
    assert harness.functions.multiProofVerify(proof, multi.proof_flags, tree.root_bytes, tampered).call() is False


def test_row_and_mixed_encodings_verify_in_solidity(harness):
    rng = random.Random(7)
    rows = [["0x" + rng.randbytes(32).hex(), random_address(rng)] for _ in range(33)]
    tree = StandardMerkleTree.of(rows, ["bytes32", "address"])
    for index in (0, 16, 32):
        row_hash, contributor = tree.at(index)
        leaf = harness.functions.rowLeaf(row_hash, contributor).call()  # canonical bytes32 is bytes
        assert harness.functions.verify([b32(p) for p in tree.get_proof(index)], tree.root_bytes, leaf).call()

    mixed = [[f"adapter-{i} ✓", i * 10**20, i % 2 == 0] for i in range(11)]
    tree = StandardMerkleTree.of(mixed, ["string", "uint256", "bool"])
    for index in range(11):
        name, amount, flag = tree.at(index)
        leaf = harness.functions.mixedLeaf(name, int(amount), flag).call()
        assert harness.functions.verify([b32(p) for p in tree.get_proof(index)], tree.root_bytes, leaf).call()
