"""Payers' accounts: ``GET /v1/payers/{address}``, what a payer deposited into the PaymentVault (as
the node credited it), spent on answers, and has left; with their use of each model.

Public, like the records it sums: deposits are on chain, and each answer's fee and payer are in its
``inference`` record."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...records.fields import parse_address
from ..deps import Node
from ..schemas import errors

__all__ = ["router"]

router = APIRouter(tags=["payers"])


@router.get("/v1/payers/{address}", responses=errors(400))
def payer_account(address: str, node: Node) -> dict[str, Any]:
    """``{payer, deposited, spent, balance, reserved, available, deposits, answers, usage,
    depositsRequired}``: wei as decimal strings; ``usage`` lists per model (adapter) the answers,
    tokens and wei spent. ``depositsRequired`` is false on a node whose operator funds every answer."""
    payer = parse_address(address)
    account = node.balances.account(payer)
    return {**account.to_json(), "usage": node.balances.usage(payer), "depositsRequired": node.balances.required,
            "vault": node.vault.address if node.vault is not None else None}
