"""What one account earned, adapter by adapter, read from epoch files (pure: no I/O).

An epoch pays each ``fee`` record by :func:`~loraledger.rewards.split.split_fee` under the fee
split it sealed (the file's ``feeSplit``) and each ``reward_grant`` as is. A fee's ``ref`` is
``inference:<request_id>`` when an answer of the node produced it; the ``inference`` record with
that request id (in the same epoch or an earlier one: a fee follows its answer) names the model
that answered (``model``: the adapter's name, or the base model's) and the adapter's hash.
:func:`account_earnings` redoes that division for one account over a run of epoch files and
groups what the account got by model; fees that name no inference of the node (imported fees)
form one group with ``model`` None. The sum over groups and grants is the account's cumulative
balance in the last file's reward tree (:attr:`Earnings.tree_amount`), when the run starts at
epoch 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..epochs.file import ChunkReader, epoch_records
from ..errors import InputError
from ..records.fields import parse_address
from ..records.kinds import FeeRecord, InferenceRecord, RewardGrantRecord, record_from_dict
from ..rewards.split import FeeSplit, split_fee

__all__ = ["AdapterEarning", "Earnings", "account_earnings"]

_INFERENCE_REF = "inference:"


@dataclass(frozen=True)
class AdapterEarning:
    """What the account got from the fees of one model's answers."""

    #: The model that answered (an adapter's name, or the base model's); None: fees naming no answer.
    model: str | None
    #: The adapter's hash (None for the base model, and for fees naming no answer).
    adapter_hash: str | None
    #: The account's roles in those fees: ``contributor``, ``developer``, ``operator``.
    roles: tuple[str, ...]
    #: Fee records that paid the account something.
    fees: int
    #: Wei.
    amount: int


@dataclass(frozen=True)
class Earnings:
    """One account's earnings over a run of epochs."""

    account: str
    #: Largest amount first.
    by_model: tuple[AdapterEarning, ...]
    #: Wei from ``reward_grant`` records.
    grants: int
    #: The epochs read, in order.
    epochs: tuple[int, ...]
    #: The account's cumulative balance in the last epoch's reward tree (0 when absent or no epoch).
    tree_amount: int

    @property
    def total(self) -> int:
        """Wei earned in the epochs read: the groups plus the grants."""
        return sum(earning.amount for earning in self.by_model) + self.grants


def _roles(fee: FeeRecord, account: str) -> set[str]:
    return {role for role, holds in (("contributor", account in fee.weights), ("developer", fee.developer == account),
                                     ("operator", fee.operator == account)) if holds}


def _tree_amount(epoch_file: Mapping[str, Any], account: str) -> int:
    for entry in epoch_file.get("rewards", {}).get("tree", {}).get("values", []):
        holder, amount = entry["value"]
        if isinstance(holder, str) and holder.lower() == account.lower():
            return int(amount)
    return 0


def account_earnings(epoch_files: Iterable[Mapping[str, Any]], account: str,
                     read_chunk: ChunkReader | None = None) -> Earnings:
    """``account``'s earnings in ``epoch_files`` (in epoch order), grouped by model: module docstring.
    A chunked epoch's records are read through ``read_chunk``, a chunk at a time.

    ``InputError`` for an address that is not one, and for a file whose records, chunks or fee
    split do not parse."""
    account = parse_address(account)
    answered: dict[str, tuple[str, str | None]] = {}  # request id → (model, adapter hash)
    groups: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    grants = 0
    epochs: list[int] = []
    last: Mapping[str, Any] | None = None
    for epoch_file in epoch_files:
        number = epoch_file.get("epoch")
        try:
            split = FeeSplit.from_json(epoch_file.get("feeSplit"))
        except InputError as exc:
            raise InputError(f"epoch {number}: {exc}") from None
        for data in epoch_records(epoch_file, read_chunk):
            kind = data.get("kind") if isinstance(data, Mapping) else None
            if kind not in ("inference", "fee", "reward_grant"):
                continue  # other kinds earn nothing: no need to parse them
            record = record_from_dict(data)
            if isinstance(record, InferenceRecord):
                answered[record.request_id] = (record.model, record.adapter_hash)
            elif isinstance(record, RewardGrantRecord):
                grants += record.amount if record.account == account else 0
            elif isinstance(record, FeeRecord):
                amount = split_fee(record.fee, record.weights, record.developer, record.operator, split).get(account, 0)
                if not amount:
                    continue
                ref = record.ref or ""
                key = answered.get(ref[len(_INFERENCE_REF):], (None, None)) if ref.startswith(_INFERENCE_REF) \
                    else (None, None)
                group = groups.setdefault(key, {"roles": set(), "fees": 0, "amount": 0})
                group["roles"] |= _roles(record, account)
                group["fees"] += 1
                group["amount"] += amount
        epochs.append(int(number) if isinstance(number, int) else 0)
        last = epoch_file
    order = ("contributor", "developer", "operator")
    by_model = tuple(sorted(
        (AdapterEarning(model, adapter_hash, tuple(role for role in order if role in group["roles"]), group["fees"],
                        group["amount"]) for (model, adapter_hash), group in groups.items()),
        key=lambda earning: (-earning.amount, earning.model is None, earning.model or "")))
    return Earnings(account, by_model, grants, tuple(epochs), _tree_amount(last, account) if last else 0)
