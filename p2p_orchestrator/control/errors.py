"""The errors of the control socket (both ends)."""

from __future__ import annotations

from pathlib import Path

from p2p_orchestrator.errors import ControlError

__all__ = ["ControlError", "NodeNotRunning"]


class NodeNotRunning(ControlError):
    """Nobody answers on the home's control socket: no node is running there."""

    default_code = "node_not_running"

    def __init__(self, home: Path) -> None:
        super().__init__(
            f"no node is running for home {home}: start one with `p2p-orchestrator --home {home} node`"
        )
        self.home = home
