"""The demo's closing table, read from the node's public API (which reads the chain for claims):
rows, adapters, answers, fees and epochs; the payer's deposit and spending; each contributor's rows,
earnings and claims.

    python scripts/demo_summary.py NODE_URL --datanet 1 --payer ADDR --people LABEL=ADDR ...
"""

from __future__ import annotations

import argparse
import json
import urllib.request

OPEN = 10**18


def _get(url: str) -> dict | list:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _open(wei: int | str) -> str:
    return f"{int(wei) / OPEN:,.6f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("node")
    parser.add_argument("--datanet", type=int, default=1)
    parser.add_argument("--payer", required=True)
    parser.add_argument("--people", nargs="+", default=[], help="LABEL=ADDRESS, in the order to show")
    args = parser.parse_args()
    node = args.node.rstrip("/")

    datanet = _get(f"{node}/v1/datanets/{args.datanet}")
    snapshot = _get(f"{node}/v1/datanets/{args.datanet}/snapshots/{datanet['latestVersion']}")
    manifest = snapshot.get("manifest", snapshot)
    adapters = _get(f"{node}/v1/adapters")
    epochs = _get(f"{node}/v1/epochs")
    epochs = epochs.get("epochs", epochs) if isinstance(epochs, dict) else epochs
    kinds: dict[str, int] = {}
    fees = 0
    for epoch in epochs:
        for record in _get(f"{node}/v1/epochs/{epoch['epoch']}")["records"]:
            kinds[record["kind"]] = kinds.get(record["kind"], 0) + 1
            if record["kind"] == "inference":
                fees += int(record["fee"])
    payer = _get(f"{node}/v1/payers/{args.payer}")

    print("\n  what the ledger holds")
    print(f"  {'datanet rows (snapshot v' + str(manifest['version']) + ')':<34} {manifest['rowCount']:>10}")
    print(f"  {'adapters':<34} {len(adapters.get('adapters', adapters) if isinstance(adapters, dict) else adapters):>10}")
    print(f"  {'answers (inference records)':<34} {kinds.get('inference', 0):>10}")
    print(f"  {'attributions':<34} {kinds.get('attribution', 0):>10}")
    print(f"  {'fees paid by answers (OPEN)':<34} {_open(fees):>10}")
    print(f"  {'epochs posted and confirmed':<34} {sum(e['status'] == 'confirmed' for e in epochs):>10}")
    total = sum(int(e["total"]) for e in epochs)
    takings = sum(int(e.get("takings", 0)) for e in epochs)
    print(f"  {'paid into epochs (OPEN)':<34} {_open(total):>10}")
    print(f"  {'  of which from the vault (OPEN)':<34} {_open(takings):>10}")
    print(f"  {'  of which by the operator (OPEN)':<34} {_open(total - takings):>10}")
    print(f"  {'payer deposited / spent (OPEN)':<34} {_open(payer['deposited'])} / {_open(payer['spent'])}")

    counts = manifest.get("contributors", {})
    print(f"\n  {'who':<26} {'rows':>5} {'earned OPEN':>14} {'claimed OPEN':>14} {'claimable':>12}")
    for item in args.people:
        label, address = item.split("=", 1)
        reward = _get(f"{node}/v1/rewards/{address}")
        print(f"  {label:<26} {counts.get(address, 0):>5} {_open(reward['cumulativeAmount']):>14} "
              f"{_open(reward['claimed']):>14} {_open(reward['claimable']):>12}")


if __name__ == "__main__":
    main()
