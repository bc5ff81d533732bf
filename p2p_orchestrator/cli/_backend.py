"""How the CLI reaches an orchestrator.

Every command is an RPC call (``"orchestrator/<method>"`` and params), so the
CLI only needs something that answers :meth:`Backend.call`.  The local backend
opens the home directory's store in this process; it refuses politely when a
running node holds the home.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import trio

from p2p_orchestrator.orchestrator import Orchestrator


class Backend(Protocol):
    def call(self, method: str, params: dict[str, Any]) -> Any: ...


class LocalBackend:
    """Runs each call on an :class:`Orchestrator` opened on the home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def call(self, method: str, params: dict[str, Any]) -> Any:
        async def run() -> Any:
            async with Orchestrator(self.home) as orch:
                return await orch.rpc.call(method, params)

        return trio.run(run)
