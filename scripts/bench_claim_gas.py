#!/usr/bin/env python3
"""Gas of whole claim and post transactions on a real anvil, with a 100,000-leaf reward tree.

Measures (receipt gasUsed, i.e. the whole transaction including the 21,000 base and calldata):
first claim to a wallet that never held OPEN, repeat claim after a second epoch, claimMany
per fresh account at 100 accounts, and postEpoch for trees of very different sizes (post gas
must not grow with records or accounts). Prints a table with the reference points beside.

    .venv/bin/python scripts/bench_claim_gas.py [--leaves 100000] [--batch 100]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_anvil  # noqa: E402  (the same real-anvil helper the tests use)
from eth_utils import to_checksum_address  # noqa: E402

from loraledger.chain.client import ChainClient  # noqa: E402
from loraledger.chain.compile import all_abis, compile_contracts  # noqa: E402
from loraledger.chain.contracts import LedgerContracts  # noqa: E402
from loraledger.chain.deploy import Deployer  # noqa: E402
from loraledger.chain.devnet import dev_accounts  # noqa: E402
from loraledger.rewards.split import reward_tree  # noqa: E402

REFERENCES = {
    "first claim": "Uniswap MerkleDistributor 95,256; OZ cumulative 94,489; floor ~89,000; target <= 90,000",
    "repeat claim": "OZ cumulative 59,500; floor ~55,000; target <= 56,000",
    "claimMany / account": "target <= 50,000 per fresh account at 100",
}


def post(contracts: LedgerContracts, operator, epoch: int, root: str, total: int, accounts: int) -> int:
    epoch_file = {
        "epoch": epoch,
        "log": {"size": accounts, "root": "0x" + "ab" * 32},
        "rewards": {"root": root, "total": str(total)},
        "records": [],
    }
    receipt = contracts.post_epoch(operator, epoch_file, data_uri=f"epochs/{epoch}.json", data_hash="0x" + "cd" * 32)
    return int(receipt["gasUsed"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    node = start_anvil("--gas-limit", "100000000")
    try:
        keys = dev_accounts(3)
        operator, sender = keys[0], keys[1]
        artifacts = compile_contracts(ROOT, ROOT / "scripts" / "solc")
        client = ChainClient(node.url, error_abis=all_abis(artifacts))
        deployment = Deployer(client, operator, artifacts, Path(tempfile.mkdtemp()) / "deployment.json").run()
        contracts = LedgerContracts(client, deployment)

        rng = random.Random(42)
        balances = {to_checksum_address("0x" + rng.randbytes(20).hex()): rng.randrange(10**15, 10**18)
                    for _ in range(args.leaves)}
        started = time.perf_counter()
        tree = reward_tree(balances)
        build_s = time.perf_counter() - started
        post_first = post(contracts, operator, 1, tree.root, sum(balances.values()), args.leaves)

        accounts = list(balances)
        first = accounts[0]
        proof = tree.get_proof(tree.leaf_lookup([first, balances[first]]))
        first_gas = int(contracts.claim(sender, first, balances[first], proof)["gasUsed"])

        # Epoch 2: everyone earns a little more; repeat claim for the same wallet.
        balances2 = {a: v + 10**12 for a, v in balances.items()}
        tree2 = reward_tree(balances2)
        post_big = post(contracts, operator, 2, tree2.root, args.leaves * 10**12, args.leaves)
        proof = tree2.get_proof(tree2.leaf_lookup([first, balances2[first]]))
        repeat_gas = int(contracts.claim(sender, first, balances2[first], proof)["gasUsed"])

        # claimMany: batches of fresh accounts with one multiproof each. A relayer that batches
        # accounts adjacent in the tree sends the shortest multiproof; random accounts need more.
        def claim_many(batch: list[str]) -> int:
            multi = tree2.get_multi_proof([tree2.leaf_lookup([a, balances2[a]]) for a in batch])
            call = contracts.distributor.functions.claimMany(
                [a for a, _ in multi.leaves],
                [int(v) for _, v in multi.leaves],
                [bytes.fromhex(p[2:]) for p in multi.proof],
                multi.proof_flags,
            )
            return int(client.transact(sender, call, what="claimMany")["gasUsed"])

        random_gas = claim_many(rng.sample(accounts[1:], args.batch))
        by_position = sorted(range(len(accounts)), key=tree2.tree_index)
        adjacent = [accounts[i] for i in by_position[args.leaves // 2 : args.leaves // 2 + args.batch]]
        adjacent_gas = claim_many(adjacent)

        # Post gas does not depend on the tree: a 3-account epoch costs the same.
        small = reward_tree({a: balances2[a] + 1 for a in accounts[:3]})
        post_small = post(contracts, operator, 3, small.root, 3, args.leaves + 3)
    finally:
        node.process.kill()

    rows = [
        ("first claim (fresh wallet)", f"{first_gas:,}", REFERENCES["first claim"]),
        ("repeat claim", f"{repeat_gas:,}", REFERENCES["repeat claim"]),
        (f"claimMany, {args.batch} adjacent fresh accounts", f"{adjacent_gas // args.batch:,}/account",
         REFERENCES["claimMany / account"]),
        (f"claimMany, {args.batch} random fresh accounts", f"{random_gas // args.batch:,}/account",
         "longer multiproof (spread leaves)"),
        ("postEpoch, epoch 1 (first writes)", f"{post_first:,}", "one-off: fresh storage"),
        (f"postEpoch, epoch 2, {args.leaves:,} accounts", f"{post_big:,}", "must not grow with records/accounts"),
        ("postEpoch, epoch 3, 3 accounts", f"{post_small:,}", "same as epoch 2"),
    ]
    print(f"reward tree: {args.leaves:,} leaves, proof length {len(tree.get_proof(0))}, built in {build_s:.2f}s (Python)")
    width = max(len(r[0]) for r in rows)
    print(f"{'transaction':<{width}}  {'gas (whole tx)':<24}  reference")
    for name, gas, ref in rows:
        print(f"{name:<{width}}  {gas:<24}  {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
