"""Dependencies every router shares: the node and settings of the app serving the request
(``request.app.state``, set by :func:`loraledger.api.app.create_app`), and the admin check.

Use them as annotations (``def route(node: Node)``) or, for the admin check, as a route
dependency (``@router.post(..., dependencies=[AdminOnly])``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..errors import ConfigError
from ..node.context import NodeContext
from .auth import BearerToken, check_admin

__all__ = ["AdminOnly", "AppSettings", "Node", "current_node", "current_settings", "require_admin"]


def current_node(request: Request) -> NodeContext:
    """The node this app serves (opened at start-up when ``create_app`` was given none)."""
    node: NodeContext | None = request.app.state.node
    if node is None:  # only between create_app and the lifespan start-up
        raise ConfigError("the node is still starting; try again in a moment")
    return node


def current_settings(request: Request) -> Settings:
    """The settings the app was made with."""
    return request.app.state.settings


Node = Annotated[NodeContext, Depends(current_node)]
AppSettings = Annotated[Settings, Depends(current_settings)]


def require_admin(settings: AppSettings, credentials: BearerToken) -> None:
    """401 (:class:`~loraledger.errors.Unauthorized`) unless ``Authorization: Bearer <admin token>``."""
    check_admin(settings, credentials)


#: Route dependency: :func:`require_admin`. Listed before any body dependency, so a refused
#: call is answered before its body is read.
AdminOnly = Depends(require_admin)
