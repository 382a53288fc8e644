#!/usr/bin/env python3
"""Write the ABIs of the deployable contracts into src/loraledger/chain/abi/.

The package ships these so that claiming, proving and verifying need no compiler. Run
after changing a contract; tests/test_chain.py fails while they are stale.
"""

from __future__ import annotations

import json
import sys

from loraledger.chain.compile import compile_contracts
from loraledger.chain.deploy import CONTRACT_NAMES
from loraledger.config import load_settings


def main() -> int:
    settings = load_settings()
    artifacts = compile_contracts(settings.root, settings.solc_binary)
    out = settings.root / "src" / "loraledger" / "chain" / "abi"
    out.mkdir(parents=True, exist_ok=True)
    for name in CONTRACT_NAMES:
        path = out / f"{name}.json"
        path.write_text(json.dumps(artifacts[name].abi, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(settings.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
