"""``swarm(n)``: N real nodes in one trio process, for tests of services across nodes.

::

    from p2p_orchestrator.testing import swarm

    async with swarm(3) as nodes:                  # nodes[0], nodes[1], nodes[2]
        await nodes[0].rpc.call("orchestrator/install_service", {"archive_data": archive})
        await nodes[0].rpc.call("orchestrator/start_service", {"service_name": "hello"})
        answer = await nodes[1].proxy(nodes[0].peer_id).call_method("hello/greet", {"name": "Ada"})

Each node is a full :class:`~p2p_orchestrator.node.Node` (orchestrator, service
runtime, libp2p host on ``127.0.0.1``) with its own home directory under
``tmp_dir`` (a temporary directory, removed afterwards, when not given).
Every node is connected to every other one, and by default every node gives
every other one the ``admin`` role.  ``roles`` changes that: a role name for
all pairs, ``None`` for none (all peers unknown to each other), or a function
``roles(i, j)`` returning the role node ``i`` gives node ``j`` (or ``None``).
``unknown_peers`` and ``node`` (a :class:`~p2p_orchestrator.config.NodeSettings`,
e.g. with short deadlines) apply to every node; ``config`` is the base
configuration they all start from.  ``names`` gives each node a name in the
``[peers]`` table of every other one (``names=["coordinator", "worker"]``), so
services can address them as ``self.proxy.<svc>.coordinator.<method>()``.

On exit the nodes stop (their services too) and nothing is left running.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, overload

import trio

from p2p_orchestrator.config import AccessSettings, NodeSettings, OrchestratorConfig

if TYPE_CHECKING:
    from p2p_orchestrator.node import Node

__all__ = ["RoleRule", "Swarm", "swarm"]

RoleRule = str | None | Callable[[int, int], str | None]
"""The role node ``i`` gives node ``j``: one role for all, ``None``, or ``rule(i, j)``."""


class Swarm(Sequence["Node"]):
    """The running nodes of :func:`swarm`, in order (a sequence of :class:`Node`)."""

    def __init__(self, nodes: list[Node], homes: list[Path]) -> None:
        self._nodes = nodes
        self.homes = homes
        """Each node's home directory."""

    @overload
    def __getitem__(self, index: int) -> Node: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Node]: ...

    def __getitem__(self, index: int | slice) -> Node | Sequence[Node]:
        return self._nodes[index]

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    @property
    def peer_ids(self) -> list[str]:
        return [node.peer_id for node in self._nodes]


@asynccontextmanager
async def swarm(
    n: int,
    *,
    tmp_dir: str | Path | None = None,
    roles: RoleRule = "admin",
    unknown_peers: str = "public",
    node: NodeSettings | None = None,
    config: OrchestratorConfig | None = None,
    connect: bool = True,
    names: Sequence[str] | None = None,
) -> AsyncIterator[Swarm]:
    """Start ``n`` connected nodes; see the module docstring."""
    from p2p_orchestrator.node import Node
    from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of
    from p2p_orchestrator.orchestrator import Orchestrator

    if n < 1:
        raise ValueError("a swarm needs at least one node")
    if unknown_peers not in ("public", "none"):
        raise ValueError(f'unknown_peers must be "public" or "none", not {unknown_peers!r}')
    if names is not None and len(names) != n:
        raise ValueError(f"names must name each of the {n} nodes")
    owned = tmp_dir is None
    root = Path(tempfile.mkdtemp(prefix="p2p-swarm-")) if tmp_dir is None else Path(tmp_dir)
    try:
        homes = [root / f"node{i}" for i in range(n)]
        ids = [peer_id_of(await trio.to_thread.run_sync(load_or_create_identity, home)) for home in homes]
        base = config or OrchestratorConfig()
        settings = node or base.node
        async with AsyncExitStack() as stack:
            nodes = []
            for i, home in enumerate(homes):
                given = {ids[j]: role for j in range(n) if j != i and (role := _role(roles, i, j))}
                access = AccessSettings(roles=given, unknown_peers=unknown_peers)
                peers = {names[j]: ids[j] for j in range(n) if j != i} if names is not None else base.peers
                node_config = replace(base, node=settings, access=access, peers=peers)
                orchestrator = await stack.enter_async_context(Orchestrator(home, config=node_config))
                nodes.append(await stack.enter_async_context(Node(orchestrator)))
            if connect:
                await _connect_all(nodes)
            yield Swarm(nodes, homes)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def _role(rule: RoleRule, i: int, j: int) -> str | None:
    return rule(i, j) if callable(rule) else rule


async def _connect_all(nodes: list[Node]) -> None:
    """Connect every pair once (node i dials every node after it), concurrently."""
    async with trio.open_nursery() as nursery:
        for i, dialer in enumerate(nodes):
            for target in nodes[i + 1 :]:
                nursery.start_soon(dialer.connect, target.listen_addrs[0])
