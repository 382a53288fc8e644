"""One error hierarchy for loraledger.

Every error the node raises on purpose is a ``LoraLedgerError``. Entrypoints (CLI, API)
catch this base class and turn it into one clear line or a 4xx JSON body; anything else
is a bug. Each error carries a message that says what was wrong and what to do, plus
structured fields for machines.

    LoraLedgerError
    ├── InputError          bad input from a user: malformed address, negative amount, ...  (also ValueError)
    ├── NotFoundError       a named thing does not exist: deployments file, epoch, record  (also LookupError)
    ├── Unauthorized        a request lacks the credentials an action needs (admin token, owner signature)
    ├── ConfigError         settings or environment are unusable: missing key, no node_modules
    ├── LedgerError         the local ledger refused or is inconsistent
    ├── ChainError          the chain is unreachable or a call/transaction failed
    │   └── TransactionReverted   a transaction reverted; carries the decoded custom error
    └── ResourceError       the machine ran out of memory (host or GPU) or a device failed
        └── Overloaded      the node is at capacity now; retry after ``retry_after`` seconds

Serving and attribution add their own classes when they raise them.
"""

from __future__ import annotations

from typing import Any


class LoraLedgerError(Exception):
    """Base of every error loraledger raises on purpose.

    ``message`` is one line for a person (what is wrong, what to do); ``details``
    holds structured fields for machines (API bodies, logs).
    """

    #: Short machine-readable code, used as the ``error`` field of API bodies.
    code: str = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready body: ``{"error": code, "message": ..., **details}``."""
        return {"error": self.code, "message": self.message, **self.details}


class InputError(LoraLedgerError, ValueError):
    """Input from a user or client is malformed or not allowed."""

    code = "invalid_input"


class NotFoundError(LoraLedgerError, LookupError):
    """Something named by the user does not exist (file, epoch, record, account)."""

    code = "not_found"


class Unauthorized(LoraLedgerError):
    """A request lacks the credentials its action needs (the admin token, an owner's signature)."""

    code = "unauthorized"


class ConfigError(LoraLedgerError):
    """Settings or the environment are unusable (missing key, missing toolchain)."""

    code = "config"


class LedgerError(LoraLedgerError):
    """The local ledger refused an operation or found itself inconsistent."""

    code = "ledger"


class ChainError(LoraLedgerError):
    """The chain is unreachable, or a call or transaction failed."""

    code = "chain"


class TransactionReverted(ChainError):
    """A transaction or call reverted; ``error_name`` and ``error_args`` hold the decoded custom error."""

    code = "reverted"

    def __init__(
        self,
        message: str,
        *,
        error_name: str | None = None,
        error_args: dict[str, Any] | None = None,
        tx_hash: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message, error_name=error_name, error_args=error_args or {}, tx_hash=tx_hash, **details
        )
        self.error_name = error_name
        self.error_args = error_args or {}
        self.tx_hash = tx_hash


class ResourceError(LoraLedgerError):
    """The machine ran out of a resource (host or GPU memory) or a device failed: not the
    user's input, and retrying with a smaller batch, model or another device may work."""

    code = "resource"


class Overloaded(ResourceError):
    """The node is at capacity (its queue is full): the same request may succeed after
    ``retry_after`` seconds (answered 429 with ``Retry-After``)."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class PaymentRequired(LoraLedgerError):
    """The payer's deposit does not cover what the request may cost (answered 402 with the
    balance, the price and what the request needs, in wei as decimal strings)."""

    code = "insufficient_funds"
