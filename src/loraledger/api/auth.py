"""The one admin-token check of the API.

Admin routes need ``Authorization: Bearer <LORALEDGER_ADMIN_TOKEN>``; a node without a
configured token has its admin routes switched off. A refused call raises
:class:`loraledger.errors.Unauthorized`, answered 401 by the API's one error mapping
(:mod:`loraledger.api.errors`). Routes use :data:`loraledger.api.deps.AdminOnly`; the
datanet owner routes (admin token OR the owner's signature) call :func:`admin_token_ok`.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..config import Settings
from ..errors import Unauthorized

__all__ = ["BearerToken", "admin_token_ok", "check_admin"]

# Parses "Authorization: Bearer <token>" (scheme case-insensitive) and declares the scheme
# in the OpenAPI document; auto_error=False so that the refusal is ours (a JSON 401).
_bearer = HTTPBearer(auto_error=False, description="the node's admin token (LORALEDGER_ADMIN_TOKEN)")
#: The bearer credentials of the request, if it sent any.
BearerToken = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _expected(settings: Settings) -> str | None:
    return settings.admin_token.get_secret_value() if settings.admin_token else None


def admin_token_ok(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """Whether the request carries the node's admin token (constant-time compare)."""
    expected = _expected(settings)
    given = credentials.credentials.strip() if credentials is not None else ""
    return bool(expected and given and secrets.compare_digest(given.encode(), expected.encode()))


def check_admin(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    """:class:`Unauthorized` unless the credentials are the admin token (saying why)."""
    if not _expected(settings):
        raise Unauthorized("admin endpoints are disabled: set LORALEDGER_ADMIN_TOKEN on the node")
    if not admin_token_ok(settings, credentials):
        raise Unauthorized("missing or wrong admin token (Authorization: Bearer <token>)")
