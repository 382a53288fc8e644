"""The admin token check, shared by every API module with admin routes (one implementation).

Admin routes need ``Authorization: Bearer <LORALEDGER_ADMIN_TOKEN>``. A node without a
configured token has its admin routes switched off. A refused call raises
:class:`AdminUnauthorized`, which :func:`loraledger.api.app.create_app` answers with a 401
JSON body ``{"error": "unauthorized", "message": ...}``.

Use it as a route dependency::

    require_admin = admin_dependency(settings)

    @router.post("/v1/things", dependencies=[Depends(require_admin)])
    def create_thing(...): ...
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Header

from ..config import Settings

__all__ = ["AdminUnauthorized", "admin_dependency", "admin_token_ok"]


class AdminUnauthorized(Exception):
    """An admin endpoint was called without the right token (answered 401)."""


def _expected(settings: Settings) -> str | None:
    return settings.admin_token.get_secret_value() if settings.admin_token else None


def admin_token_ok(settings: Settings, authorization: str | None) -> bool:
    """Whether the ``Authorization`` header carries the node's admin token (constant-time compare)."""
    expected = _expected(settings)
    given = (authorization or "").removeprefix("Bearer ").strip()
    return bool(expected and given and secrets.compare_digest(given.encode(), expected.encode()))


def admin_dependency(settings: Settings) -> Callable[..., None]:
    """A FastAPI dependency refusing (:class:`AdminUnauthorized`) calls without the admin token."""

    def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if not _expected(settings):
            raise AdminUnauthorized("admin endpoints are disabled: set LORALEDGER_ADMIN_TOKEN on the node")
        if not admin_token_ok(settings, authorization):
            raise AdminUnauthorized("missing or wrong admin token (Authorization: Bearer <token>)")

    return require_admin
