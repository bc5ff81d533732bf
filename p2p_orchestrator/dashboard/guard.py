"""The checks every dashboard request passes, before any route runs.

* **Host.**  Served on loopback, a request must name this server in its ``Host`` header
  (``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT``): a page of another site whose
  name was made to resolve to 127.0.0.1 (DNS rebinding) is refused (``bad_host``).
* **Reading.**  On loopback the pages need no token: whoever can reach the port is on this
  machine.  Served elsewhere (``allow_remote``), every request needs it.
* **Actions** are ``POST`` only and need all of: the token in ``Authorization: Bearer TOKEN``
  (``token_required``, ``bad_token``; never read from the URL, which ends up in histories and
  logs), a JSON body (a cross-site form cannot send one without a preflight this server never
  grants), and, where the browser says where the request comes from, this same origin:
  ``Sec-Fetch-Site`` ``same-origin`` (or ``none``: typed by the user) and ``Origin`` equal to
  ``http://`` + ``Host`` (``cross_site``).  A client that sends neither header (a script with
  the token) is not a browser another site can steer.

The token is compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from p2p_orchestrator.dashboard.errors import DashboardError
from p2p_orchestrator.dashboard.token import token_matches

__all__ = ["Guard", "loopback_hosts"]

_SAME_SITE = frozenset({"same-origin", "none"})


def loopback_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values a browser on this machine sends to a loopback server on ``port``."""
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


@dataclass(frozen=True)
class Guard:
    """The checks of one dashboard server; see the module docstring.  ``headers`` are lower-cased."""

    token: str
    hosts: frozenset[str] | None
    """The ``Host`` values accepted; ``None``: any (served elsewhere, where the token guards all)."""

    @property
    def remote(self) -> bool:
        """Served beyond loopback: every request needs the token."""
        return self.hosts is None

    def check_host(self, headers: Mapping[str, str]) -> None:
        """Refuse (``bad_host``) a request that names another server."""
        if self.hosts is not None and headers.get("host", "").lower() not in self.hosts:
            raise DashboardError(
                "this dashboard answers only to the names of this machine's loopback address",
                code="bad_host",
            )

    def check_read(self, headers: Mapping[str, str]) -> None:
        """A page or its data: the token too, when served beyond loopback."""
        self.check_host(headers)
        if self.remote:
            self.check_token(headers)

    def check_action(self, method: str, headers: Mapping[str, str]) -> None:
        """An action: POST, the token, JSON, the same origin (see the module docstring)."""
        self.check_host(headers)
        if method != "POST":
            raise DashboardError("actions are POST requests", code="method_not_allowed")
        self.check_token(headers)
        self.check_same_origin(headers)
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise DashboardError(
                "an action's body is JSON (Content-Type: application/json)", code="bad_request"
            )

    def check_token(self, headers: Mapping[str, str]) -> None:
        """``Authorization: Bearer TOKEN`` with this node's token."""
        scheme, _, given = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise DashboardError(
                "this needs the node's dashboard token (p2p-orchestrator dashboard --token), "
                "sent as Authorization: Bearer TOKEN",
                code="token_required",
            )
        if not token_matches(given.strip(), self.token):
            raise DashboardError("that is not this node's dashboard token", code="bad_token")

    @staticmethod
    def check_same_origin(headers: Mapping[str, str]) -> None:
        """Refuse (``cross_site``) a request a browser says another site made."""
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() not in _SAME_SITE:
            raise DashboardError(f"a {site} request may not act here", code="cross_site")
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{headers.get('host', '').lower()}":
            raise DashboardError(f"a request from {origin} may not act here", code="cross_site")
