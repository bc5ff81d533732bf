"""The dashboard's token: one per node home, in ``<home>/dashboard.token`` (mode 0600).

It is made the first time it is asked for (by the node when it serves the dashboard, or by
``p2p-orchestrator dashboard --token``), from 32 random bytes, and kept: restarting the node does
not change it.  Delete the file (with the node stopped) to make a new one.  A file the group or
others may read is refused, as the node's identity key is.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from pathlib import Path

from p2p_orchestrator._files import ExposedFile, NotRegularFile, create_private, read_private
from p2p_orchestrator.dashboard.errors import DashboardError

__all__ = ["TOKEN_FILE_NAME", "load_or_create_token", "token_matches"]

TOKEN_FILE_NAME = "dashboard.token"
_MAX_TOKEN_BYTES = 256
_MIN_TOKEN_CHARS = 32


def load_or_create_token(home: Path) -> str:
    """The home's token, made (and kept, 0600) if it has none yet; blocking."""
    path = home / TOKEN_FILE_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # made meanwhile by another process: read that one
        create_private(path, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
    return _read(path)


def _read(path: Path) -> str:
    try:
        data = read_private(path, _MAX_TOKEN_BYTES)
    except ExposedFile as exc:
        raise DashboardError(
            f"{path} may be read by other users (mode {exc.mode:04o}): fix it with chmod 600 {path}, "
            "or delete it (with the node stopped) to make a new token",
            code="dashboard_token",
        ) from None
    except NotRegularFile:
        raise DashboardError(f"{path} is not a regular file", code="dashboard_token") from None
    text = data.decode("ascii", errors="replace").strip()
    if len(data) > _MAX_TOKEN_BYTES or len(text) < _MIN_TOKEN_CHARS or not text.isprintable():
        raise DashboardError(
            f"{path} does not hold a token: delete it (with the node stopped) to make a new one",
            code="dashboard_token",
        )
    return text


def token_matches(given: str, token: str) -> bool:
    """Whether ``given`` is ``token``, compared in constant time."""
    return hmac.compare_digest(given.encode("utf-8", errors="replace"), token.encode("utf-8"))
