"""One answer's attribution and fee, as the API and ``loraledger attribution show`` present them.

:func:`answer_attribution` finds, for an inference record, its queue entry (status, query vector),
its ``attribution`` record and its ``fee`` record. The fee record follows the record that settles
the answer in the same transaction: the inference itself (the base model, an adapter without an
index) or its attribution (the worker appends the attribution, then the fee). :func:`fee_shares`
divides the fee as an epoch will (:func:`~loraledger.rewards.split.split_fee`), each account with
its roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..records.kinds import AttributionRecord, FeeRecord, InferenceRecord
from ..records.ledger import RecordLedger
from ..rewards.split import FeeSplit, split_fee
from .tables import attribution_status

__all__ = ["AnswerAttribution", "answer_attribution", "fee_after", "fee_shares"]


@dataclass(frozen=True)
class AnswerAttribution:
    """An answer's attribution state: ``status`` is None when the answer is not attributed (the base
    model, or an adapter without an index); ``record`` and ``fee`` once written."""

    status: dict[str, Any] | None
    record: AttributionRecord | None
    fee: FeeRecord | None


def _record_at(records: RecordLedger, seq: int) -> Any:
    return records.get(seq) if 0 <= seq < records.size() else None


def answer_attribution(records: RecordLedger, inference: InferenceRecord) -> AnswerAttribution:
    """The attribution state of ``inference`` (a stamped record): module docstring."""
    assert inference.seq is not None
    status = attribution_status(records.engine, inference.seq)
    record = None
    if status is None:
        settled_at: int | None = inference.seq
    else:
        settled_at = status["attributionSeq"]
        if settled_at is not None:
            found = _record_at(records, settled_at)
            record = found if isinstance(found, AttributionRecord) and found.inference == inference.hash_hex else None
    fee = fee_after(records, inference, settled_at) if settled_at is not None else None
    return AnswerAttribution(status, record, fee)


def fee_after(records: RecordLedger, inference: InferenceRecord, settled_at: int) -> FeeRecord | None:
    """The fee record of ``inference``: the record right after the one at ``settled_at`` that settled
    it (the inference itself, or its attribution) when it is a fee referring to this request."""
    found = _record_at(records, settled_at + 1) if inference.fee else None
    return found if isinstance(found, FeeRecord) and found.ref == f"inference:{inference.request_id}" else None


def fee_shares(fee: FeeRecord, split: FeeSplit) -> list[dict[str, Any]]:
    """``[{"account", "roles", "amount"}]``, largest amount first: how ``fee`` divides under ``split``
    (roles: ``contributor``, ``developer``, ``operator``; one address may hold several)."""
    amounts = split_fee(fee.fee, fee.weights, fee.developer, fee.operator, split)
    out = []
    for account, amount in amounts.items():
        roles = [role for role, holds in (("contributor", account in fee.weights),
                                          ("developer", account == fee.developer),
                                          ("operator", account == fee.operator)) if holds]
        out.append({"account": account, "roles": roles, "amount": str(amount)})
    return sorted(out, key=lambda share: (-int(share["amount"]), share["account"]))
