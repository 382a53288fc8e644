"""The demo's third contributor claims from the node's dashboard: headless Chromium opens their
contributor page with a wallet injected (``window.ethereum``, signing with their devnet key), clicks
**Claim**, and waits for the page to show the claim confirmed and the new balance. Then it saves
screenshots of the main pages.

    python scripts/demo_dashboard_claim.py NODE_URL --key 0xKEY --rpc-url URL [--screenshots DIR]

Exits 3 when Chromium or Playwright is missing (the demo then claims with the CLI)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("node")
    parser.add_argument("--key", required=True)
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--screenshots", type=Path)
    args = parser.parse_args()
    screenshots = _script("dashboard_screenshots")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        print("playwright is not installed", file=sys.stderr)
        return 3
    executable = screenshots.chromium_path()
    if executable is None:
        print("Chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 3
    from eth_account import Account
    from web3 import Web3

    account = Account.from_key(args.key)
    chain_id = Web3(Web3.HTTPProvider(args.rpc_url)).eth.chain_id
    devwallet = _script("devwallet")
    wallet = devwallet.DevWallet(args.rpc_url, account, chain_id)
    page_url = f"{args.node.rstrip('/')}/dashboard/contributors/{account.address}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.expose_function("__testWallet", wallet)
            context.add_init_script(devwallet.WALLET_SCRIPT)
            tab = context.new_page()
            tab.goto(page_url)
            print(f"{page_url}: claimable {tab.locator('#claimable').inner_text()}")
            tab.click("#claim")
            status = tab.locator("#claim-status")
            expect(status).to_have_class(re.compile(r"\b(ok|error)\b"), timeout=60_000)
            print(f"the page says: {status.inner_text().strip()}")
            if "error" in (status.get_attribute("class") or ""):
                return 1
            expect(tab.locator("#claimable")).to_have_text(re.compile(r"^0(\.0+)?\b"), timeout=30_000)
            print(f"claimable now {tab.locator('#claimable').inner_text()}, "
                  f"balance {tab.locator('#balance').inner_text()}")
            context.close()
            if args.screenshots is not None:
                saved = screenshots.capture(args.node, args.screenshots, contributor=account.address, browser=browser)
                print(f"{len(saved)} screenshots of the dashboard in {args.screenshots}")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
