"""A small client of a node's ``/v1`` API for the CLI (edge: HTTP).

Errors keep the node's meaning: its 400 becomes ``InputError``, 404 ``NotFoundError``,
401/403 ``ConfigError`` (a missing or wrong admin token is a set-up problem), anything
else or an unreachable node ``LedgerError`` — each with the node's own message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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
        raise self._error(method, url, response.status_code, body)

    def stream(self, path: str, body: dict[str, Any], *, api_key: str | None) -> Iterator[dict[str, Any]]:
        """POST ``body`` (with ``"stream": true``) and yield the server-sent events' JSON."""
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        url = f"{self.base_url}{path}"
        try:
            with httpx.stream("POST", url, json=body, headers=headers, timeout=self.timeout) as response:
                if not response.is_success:
                    response.read()
                    try:
                        error_body = response.json()
                    except ValueError:
                        error_body = None
                    raise self._error("POST", url, response.status_code, error_body, api=True)
                for line in response.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        yield json.loads(line[6:])
        except httpx.HTTPError as exc:
            raise LedgerError(f"cannot reach the node at {self.base_url} ({type(exc).__name__}: {exc})") from None

    def _error(self, method: str, url: str, status: int, body: Any, *, api: bool = False) -> Exception:
        """The node's refusal as our error: its message, from our body or OpenAI's."""
        message = None
        if isinstance(body, dict):
            message = body.get("message")
            if message is None and isinstance(body.get("error"), dict):
                message = body["error"].get("message")
        message = message or f"{method} {url} answered {status}"
        if status == 404:
            return NotFoundError(message)
        if status in (401, 403):
            return ConfigError(f"the node refused the {'API key' if api else 'admin token'}: {message}")
        if 400 <= status < 500:
            return InputError(message)
        return LedgerError(f"node error {status}: {message}")
