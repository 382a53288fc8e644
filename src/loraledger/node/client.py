"""A small client of a node's ``/v1`` API for the CLI (edge: HTTP).

Errors keep the node's meaning: its 400 becomes ``InputError``, 404 ``NotFoundError``,
401/403 ``ConfigError`` (a missing or wrong admin token is a set-up problem), anything
else or an unreachable node ``LedgerError`` — each with the node's own message.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, InputError, LedgerError, NotFoundError

__all__ = ["NodeClient"]


class NodeClient:
    """Calls one node's API; ``admin_token`` is sent as a bearer token when given."""

    def __init__(self, base_url: str, *, admin_token: str | None = None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                admin: bool = False) -> Any:
        import httpx

        headers = {}
        if admin:
            if not self.admin_token:
                raise ConfigError("this needs the node's admin token: set LORALEDGER_ADMIN_TOKEN")
            headers["Authorization"] = f"Bearer {self.admin_token}"
        url = f"{self.base_url}{path}"
        try:
            response = httpx.request(method, url, json=json, params=params, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise LedgerError(f"cannot reach the node at {self.base_url} ({type(exc).__name__}: {exc})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        message = body.get("message") if isinstance(body, dict) else None
        message = message or f"{method} {url} answered {response.status_code}"
        if response.status_code == 404:
            raise NotFoundError(message)
        if response.status_code in (401, 403):
            raise ConfigError(f"the node refused the admin token: {message}")
        if 400 <= response.status_code < 500:
            raise InputError(message)
        raise LedgerError(f"node error {response.status_code}: {message}")
