"""pytest plugin: the ``swarm`` fixture, for testing services across nodes with pytest-trio.

Installed with the package (entry point ``pytest11``), so service authors just
use it::

    async def test_greet_across_nodes(swarm):
        nodes = await swarm(2)
        await nodes[0].rpc.call("orchestrator/install_service", {"archive_data": archive})
        await nodes[0].rpc.call("orchestrator/start_service", {"service_name": "hello"})
        answer = await nodes[1].proxy(nodes[0].peer_id).call_method("hello/greet", {"name": "Ada"})

``swarm`` is a factory: ``await swarm(n, **options)`` starts ``n`` connected
nodes (options as for :func:`p2p_orchestrator.testing.swarm`) under the test's
``tmp_path``; call it more than once for several swarms.  They all stop when
the test ends.  The test must run under trio (``trio_mode = true``, or mark it
``@pytest.mark.trio``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from p2p_orchestrator.testing.swarm import Swarm, swarm

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["SwarmFactory"]

SwarmFactory = Callable[..., Awaitable[Swarm]]
"""``await factory(n, **options)`` -> a running :class:`Swarm`."""


@pytest.fixture(name="swarm")
async def swarm_fixture(tmp_path: Path) -> AsyncIterator[SwarmFactory]:
    """Start swarms of real nodes for this test: ``nodes = await swarm(3)``.

    Each swarm lives in a task of this fixture's nursery (trio requires a
    nursery to be closed by the task that opened it), which waits for the test
    to end and then leaves the swarm's ``async with`` normally, so the nodes
    stop as cleanly as in application code.
    """
    done = trio.Event()
    count = 0

    async def run(n: int, options: dict[str, Any], *, task_status: TaskStatus[Swarm]) -> None:
        async with swarm(n, **options) as nodes:
            task_status.started(nodes)
            await done.wait()

    async with trio.open_nursery() as nursery:

        async def start(n: int, **options: Any) -> Swarm:
            nonlocal count
            count += 1
            options.setdefault("tmp_dir", tmp_path / f"swarm{count}")
            nodes: Swarm = await nursery.start(run, n, options)
            return nodes

        try:
            yield start
        finally:
            done.set()
