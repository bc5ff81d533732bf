"""A swarm of nodes that can leave and come back: each node runs in a task of its own.

:func:`p2p_orchestrator.testing.swarm` enters every node in the test's own task, so none can
stop before the others.  Here each node lives in its own task (same homes, roles and fast
settings as ``tests.distribution.support.transfer_swarm``): :meth:`LiveSwarm.stop` ends one
node as a departing host would (its streams reset, its connections closed), and
:meth:`LiveSwarm.start` brings it back on the same home and identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator import Orchestrator
from p2p_orchestrator.config import AccessSettings, OrchestratorConfig
from p2p_orchestrator.node import Node
from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of
from tests.distribution.support import CHUNK, transfers
from tests.node.support import fast_config

__all__ = ["LiveSwarm", "live_swarm"]


class LiveSwarm:
    """Nodes ``0 .. n-1``, each in its own task; see the module docstring."""

    def __init__(self, nursery: trio.Nursery, homes: list[Path], configs: list[OrchestratorConfig]) -> None:
        self._nursery = nursery
        self.homes = homes
        self._configs = configs
        self.nodes: list[Node | None] = [None] * len(homes)
        self._stops: list[trio.Event] = [trio.Event() for _ in homes]
        self._gone: list[trio.Event] = [trio.Event() for _ in homes]

    def __getitem__(self, index: int) -> Node:
        node = self.nodes[index]
        assert node is not None, f"node {index} is stopped"
        return node

    async def start(self, index: int) -> Node:
        """Run node ``index`` (again) and connect it to every other running node."""
        self._stops[index], self._gone[index] = trio.Event(), trio.Event()
        node: Node = await self._nursery.start(self._run, index)
        for other in self.nodes:
            if other is not None and other is not node:
                await node.connect(other.listen_addrs[0])
        return node

    async def stop(self, index: int) -> None:
        """End node ``index`` and wait until it is gone."""
        self._stops[index].set()
        await self._gone[index].wait()

    async def _run(self, index: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with (
                Orchestrator(self.homes[index], config=self._configs[index]) as orchestrator,
                Node(orchestrator) as node,
            ):
                transfers(node).chunk_size = CHUNK
                self.nodes[index] = node
                task_status.started(node)
                await self._stops[index].wait()
        finally:
            self.nodes[index] = None
            self._gone[index].set()


@asynccontextmanager
async def live_swarm(
    n: int, tmp_path: Path, *, roles: Callable[[int, int], str | None] | None = None, **node: Any
) -> AsyncIterator[LiveSwarm]:
    """``n`` connected nodes, each in its own task (every pair ``admin`` unless ``roles`` says)."""
    homes = [tmp_path / f"node{i}" for i in range(n)]
    ids = [peer_id_of(await trio.to_thread.run_sync(load_or_create_identity, home)) for home in homes]
    base = fast_config(**{"read_timeout": 2.0, "write_timeout": 2.0, **node})
    configs = []
    for i in range(n):
        given = {ids[j]: role for j in range(n) if j != i and (role := (roles or _admin)(i, j))}
        configs.append(replace(base, access=AccessSettings(roles=given, unknown_peers="none")))
    async with trio.open_nursery() as nursery:
        live = LiveSwarm(nursery, homes, configs)
        for i in range(n):
            await live.start(i)
        try:
            yield live
        finally:
            for i in range(n):
                if live.nodes[i] is not None:
                    await live.stop(i)


def _admin(i: int, j: int) -> str | None:
    return "admin"
