"""The ``swarm`` pytest fixture (p2p_orchestrator.testing.pytest_plugin), as a service author uses it."""

from __future__ import annotations

from pathlib import Path

import trio

from p2p_orchestrator.testing.pytest_plugin import SwarmFactory
from tests.helpers import make_archive
from tests.node.support import fast_config


async def test_swarm_fixture_runs_a_service_across_nodes(swarm: SwarmFactory, tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "src")
    with trio.fail_after(30):
        nodes = await swarm(3, config=fast_config())
        assert len(nodes) == 3 and len(set(nodes.peer_ids)) == 3
        for node in nodes:  # connected to every other node
            assert {p.peer_id for p in node.peers() if p.connected} == set(nodes.peer_ids) - {node.peer_id}
        host = nodes[2]
        await (
            nodes[0]
            .proxy(host.peer_id)
            .call_method("orchestrator/install_service", {"archive_data": archive})
        )
        await (
            nodes[1]
            .proxy(host.peer_id)
            .call_method("orchestrator/start_service", {"service_name": "example_service"})
        )
        answer = await nodes[0].proxy(host.peer_id).call_method("example_service/example_method")
        assert answer == {"message": "Hello from service!"}
        # a second, separate swarm in the same test
        more = await swarm(1, config=fast_config())
        assert more[0].peer_id not in nodes.peer_ids
        assert nodes.homes[0].parent != more.homes[0].parent
