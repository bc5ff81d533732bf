"""``LaunchSpec``: everything needed to start one service process (what the spawner takes)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LaunchSpec"]


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one service process."""

    name: str
    version: str
    directory: Path
    data_directory: Path | None = None
    """The service's working directory (its own files); ``None``: ``directory``."""
    config: dict[str, Any] = field(default_factory=dict)
    start_timeout: float = 10.0
    stop_timeout: float = 5.0
    call_timeout: float = 30.0
    memory_limit_mb: int = 0
    max_concurrent_calls: int = 64
    python: str = sys.executable
    """The interpreter: the node's, or the service's virtual environment's."""
    description: str = ""
    """The manifest's description (the service's ``info.description`` unless it sets one)."""
    peer_names: frozenset[str] = frozenset()
    """The names of the node's ``[peers]`` table, which the service's proxy takes as peers."""
    sandbox: bool = True
    """Confine the process with Landlock (see :mod:`~p2p_orchestrator.runtime._sandbox`)."""
    network: bool = True
    """With ``sandbox``: whether the process may bind and connect TCP sockets."""
    readable: tuple[str, ...] = ()
    """With ``sandbox``: more directories it may read (the runner's packages, for a service's venv)."""
    environment: tuple[tuple[str, str], ...] = ()
    """Variables of the node's environment the operator passes on (``[runtime] pass_env``)."""
    event_loop: str = "asyncio"
    """The event loop the service runs on: ``"asyncio"`` or ``"trio"`` (its manifest's ``event_loop``)."""
