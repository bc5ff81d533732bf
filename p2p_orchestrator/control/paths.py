"""Where a node's control socket is, and how to reach a path too long for ``sockaddr_un``.

The home directory is resolved here rather than with
:func:`p2p_orchestrator.config.default_home`, which would import the
configuration's dependencies (trio among them): a CLI call must stay cheap.
Both follow the same rule: ``--home``, else ``$P2P_ORCHESTRATOR_HOME``, else
``~/.p2p-orchestrator``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["HOME_ENV", "SOCKET_NAME", "resolve_home", "socket_address", "socket_path"]

HOME_ENV = "P2P_ORCHESTRATOR_HOME"
SOCKET_NAME = "control.sock"
_MAX_SUN_PATH = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """``home``, else ``$P2P_ORCHESTRATOR_HOME``, else ``~/.p2p-orchestrator`` (made absolute)."""
    if home is not None:
        return Path(home).expanduser().absolute()
    env = os.environ.get(HOME_ENV)
    return (Path(env).expanduser() if env else Path.home() / ".p2p-orchestrator").absolute()


def socket_path(home: Path) -> Path:
    """The control socket of the node that owns ``home``."""
    return home / SOCKET_NAME


@contextlib.contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """An address to ``bind``/``connect`` for ``path``, even past the 107-byte limit.

    A long path is reached through ``/proc/self/fd/<fd of its directory>/``
    (Linux), with the directory held open while the context lasts.
    """
    text = os.fspath(path)
    if len(os.fsencode(text)) <= _MAX_SUN_PATH:
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
