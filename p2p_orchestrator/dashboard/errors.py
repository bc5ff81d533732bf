"""The dashboard's refusals, each with a stable code and the HTTP status it is answered with."""

from __future__ import annotations

from typing import ClassVar

from p2p_orchestrator.errors import OrchestratorError

__all__ = ["STATUS_OF", "DashboardError"]

STATUS_OF: dict[str, int] = {
    "token_required": 401,
    "bad_token": 403,
    "cross_site": 403,
    "bad_host": 421,
    "bad_request": 400,
    "unknown_action": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "starting": 503,
    "busy": 503,
}
"""The HTTP status of each code; any other code is the operation's own refusal (409)."""


class DashboardError(OrchestratorError):
    """A request the dashboard refuses: ``token_required``, ``bad_token``, ``cross_site``,
    ``bad_host``, ``bad_request``, ``unknown_action``, ``not_found``; or it cannot start
    (``dashboard_listen``, ``dashboard_token``)."""

    default_code: ClassVar[str] = "dashboard_error"

    @property
    def status(self) -> int:
        """The HTTP status the refusal is answered with."""
        return STATUS_OF.get(self.code, 409)
