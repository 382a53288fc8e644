"""A devnet wallet for a browser page: an EIP-1193 provider (``window.ethereum``) injected into the page,
whose ``request`` calls a Python function that answers accounts and chain id itself, signs
``eth_sendTransaction`` with a devnet key (eth-account) and forwards reads to the chain's JSON-RPC.

Used by tests/test_dashboard.py and scripts/demo_dashboard_claim.py with Playwright:
``context.expose_function("__testWallet", DevWallet(...))`` then ``context.add_init_script(WALLET_SCRIPT)``.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["DevWallet", "WALLET_SCRIPT"]


WALLET_SCRIPT = """
window.ethereum = {
  isLoraledgerDevWallet: true,
  request: async function (call) {
    const reply = await window.__testWallet(call.method, call.params || []);
    if (reply.error) { const error = new Error(reply.error.message); error.code = reply.error.code; throw error; }
    return reply.result;
  },
  on: function () {}, removeListener: function () {},
};
"""


class DevWallet:
    """The Python half of the injected EIP-1193 provider: one devnet account."""

    def __init__(self, rpc_url: str, account, chain_id: int, *, reject: bool = False, tamper: bool = False):
        from web3 import Web3

        self.rpc_url, self.account, self.chain_id = rpc_url, account, chain_id
        self.reject, self.tamper = reject, tamper
        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        self.calls: list[str] = []
        self.sent: list[str] = []

    def __call__(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.calls.append(method)
        if method in ("eth_requestAccounts", "eth_accounts"):
            if self.reject:
                return {"error": {"code": 4001, "message": "User rejected the request."}}
            return {"result": [self.account.address]}
        if method == "eth_chainId":
            return {"result": hex(self.chain_id)}
        if method == "eth_sendTransaction":
            return {"result": self._send(params[0])}
        reply = httpx.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                           timeout=30).json()
        return {"error": reply["error"]} if "error" in reply else {"result": reply["result"]}

    def _send(self, call: dict[str, Any]) -> str:
        assert call["from"].lower() == self.account.address.lower()
        data = call["data"]
        if self.tamper:  # claim one wei more than the proof covers: the distributor must revert
            amount = int(data[74:138], 16) + 1
            data = data[:74] + f"{amount:064x}" + data[138:]
        tx = {"to": self.w3.to_checksum_address(call["to"]), "from": self.account.address, "data": data, "value": 0,
              "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending"), "chainId": self.chain_id}
        tx["gas"] = 300_000 if self.tamper else self.w3.eth.estimate_gas(tx)
        fee = self.w3.eth.gas_price
        tx.update(maxFeePerGas=2 * fee, maxPriorityFeePerGas=fee)
        del tx["from"]
        signed = self.account.sign_transaction(tx)
        tx_hash = "0x" + bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction)).hex()
        self.sent.append(tx_hash)
        return tx_hash
