"""Replica rules keep COUNT copies running across the nodes that know them, with no leader.

Every node ranks the live eligible nodes the same way (rendezvous hashing) and runs a copy only
if it is among the first COUNT; a node that dies is replaced once its heartbeats stop, and when
it comes back the replacement stops its copy, so the count settles at COUNT.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator import PermissionDenied
from p2p_orchestrator.node import Node
from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of
from p2p_orchestrator.orchestrator.replicas import DEAD_AFTER_SECONDS, HEARTBEAT_SECONDS, ReplicaRule, rank
from tests.distribution.support import transfer_swarm
from tests.node.support import fast_config
from tests.release.test_updates import GOOD
from tests.runtime.support import service_archive


async def until(check: Callable[[], bool], *, within: float, why: str) -> float:
    """Seconds until ``check()`` holds (the state is other nodes': looked at every 50 ms)."""
    started = trio.current_time()
    with trio.fail_after(within):
        while not check():  # noqa: ASYNC110
            await trio.sleep(0.05)
    return trio.current_time() - started


def running(nodes: list[Node], name: str) -> list[str]:
    return sorted(node.peer_id for node in nodes if node.orchestrator.is_running(name))


@asynccontextmanager
async def node_in(
    home: Path, nursery: trio.Nursery, labels: dict[str, str] | None = None
) -> AsyncIterator[tuple[Node, trio.CancelScope]]:
    """A node that the test can kill (cancel) while the others go on."""
    scope = trio.CancelScope()
    config = fast_config(read_timeout=2.0, labels=labels or {})

    async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with Node.open(home, config=config) as node:
                task_status.started(node)
                await trio.sleep_forever()

    node = await nursery.start(run)
    yield node, scope


async def befriend(node: Node, others: list[Node]) -> None:
    for other in others:
        await node.set_role(other.peer_id, "admin")
        await other.set_role(node.peer_id, "admin")
        await other.connect(node.listen_addrs[0])


def name_ranking_first(first: str, peers: list[str]) -> str:
    """A service name whose rendezvous ranking puts ``first`` first among ``peers``."""
    for number in itertools.count():
        name = f"kept_{number}"
        if rank(name, peers)[0] == first:
            return name
    raise AssertionError("unreachable")


async def test_count_copies_run_a_dead_holder_is_replaced_and_its_return_settles_the_count(
    tmp_path: Path,
) -> None:
    victim_home = tmp_path / "victim"
    victim_id = peer_id_of(load_or_create_identity(victim_home))
    async with transfer_swarm(2, tmp_path) as nodes, trio.open_nursery() as nursery:
        name = name_ranking_first(victim_id, [victim_id, *nodes.peer_ids])
        await nodes[0].orchestrator.install_service(service_archive(tmp_path / "a", name, GOOD))
        async with node_in(victim_home, nursery) as (victim, scope):
            await befriend(victim, list(nodes))
            placed = await nodes[0].orchestrator.set_replicas(name, 1)
            assert placed["rule"]["count"] == 1
            everyone = [*nodes, victim]
            await until(lambda: running(everyone, name) == [victim_id], within=20, why="placed on the victim")
            # the victim fetched the archive from node 0, which holds it but was not chosen
            assert not nodes[0].orchestrator.is_running(name)
            view = await nodes[1].orchestrator.get_replicas(name)
            assert view["desired"] == [victim_id]
            scope.cancel()  # the holder dies
        replaced = await until(lambda: len(running(list(nodes), name)) == 1, within=30, why="replaced")
        successor = rank(name, nodes.peer_ids)[0]
        assert running(list(nodes), name) == [successor]
        print(
            f"replaced in {replaced:.1f} s (dead after {DEAD_AFTER_SECONDS} s, heartbeat {HEARTBEAT_SECONDS} s)"
        )
        assert replaced < DEAD_AFTER_SECONDS + 4 * HEARTBEAT_SECONDS + 5
        async with node_in(victim_home, nursery) as (victim, scope):  # it comes back
            await befriend(victim, list(nodes))
            everyone = [*nodes, victim]
            await until(lambda: running(everyone, name) == [victim_id], within=30, why="settled at 1")
            await trio.sleep(3 * HEARTBEAT_SECONDS)
            assert running(everyone, name) == [victim_id]  # and it stays so
            scope.cancel()
        nursery.cancel_scope.cancel()


async def test_count_zero_stops_them_all_and_clear_removes_the_rule(tmp_path: Path) -> None:
    async with transfer_swarm(3, tmp_path) as nodes:
        name = "kept"
        for node in nodes:
            await node.orchestrator.install_service(service_archive(tmp_path / node.peer_id[-6:], name, GOOD))
        await nodes[0].orchestrator.set_replicas(name, 2)
        await until(lambda: len(running(list(nodes), name)) == 2, within=20, why="two copies")
        assert running(list(nodes), name) == sorted(rank(name, nodes.peer_ids)[:2])
        info = await nodes[2].orchestrator.get_service_info(name)
        assert info["replicas"]["rule"]["count"] == 2
        assert sorted(info["replicas"]["desired"]) == running(list(nodes), name)
        await nodes[1].orchestrator.set_replicas(name, 0)  # any node with deploy may change it
        await until(lambda: running(list(nodes), name) == [], within=20, why="none")
        cleared = await nodes[2].orchestrator.set_replicas(name, None, clear=True)
        assert cleared["rule"] is None
        await until(
            lambda: all(
                (n.orchestrator.home / "replicas.json").read_text().count('"cleared": true') for n in nodes
            ),
            within=20,
            why="the removal spread",
        )


async def test_a_rule_not_signed_by_its_setter_or_from_a_setter_without_deploy_is_refused(
    tmp_path: Path,
) -> None:
    def roles(i: int, j: int) -> str | None:
        return (
            "reader" if j == 1 else "admin"
        )  # node i gives node j: node 1 reads on the others, deploys nowhere

    async with transfer_swarm(3, tmp_path, roles=roles) as nodes:
        await nodes[0].orchestrator.set_replicas("kept", 1)
        rule = ReplicaRule.from_wire((await nodes[0].orchestrator.replica_rules(["kept"]))["rules"]["kept"])
        forged = dataclasses.replace(rule, count=5, version=rule.version + 1)  # the old signature
        with pytest.raises(PermissionDenied, match="not signed"):
            await nodes[1].call_remote(
                nodes[2].peer_id, "orchestrator/replica_rule", {"rule": forged.to_wire()}
            )
        await nodes[1].orchestrator.set_replicas("other", 1)  # signed, but node 1 may not deploy on node 2
        own = (await nodes[1].orchestrator.replica_rules(["other"]))["rules"]["other"]
        with pytest.raises(PermissionDenied, match="deploy"):
            await nodes[1].call_remote(nodes[2].peer_id, "orchestrator/replica_rule", {"rule": own})
        view = await nodes[2].orchestrator.get_replicas("kept")
        assert view["rule"]["count"] == 1
        assert (await nodes[2].orchestrator.get_replicas("other"))["rule"] is None


LOADED = """
class Run(BaseService):
    @service_method()
    async def set_load(self, value):
        self.metrics.gauge("load", value)
        return value
"""


async def test_auto_scaling_adds_copies_under_load_and_removes_them_after_it(tmp_path: Path) -> None:
    async with transfer_swarm(3, tmp_path) as nodes:
        name = "scaled"
        for node in nodes:
            await node.orchestrator.install_service(
                service_archive(tmp_path / node.peer_id[-6:], name, LOADED)
            )
        await nodes[0].orchestrator.set_replicas(
            name, 1, min_count=1, max_count=3, metric="load", target=10.0, cooldown=0.5
        )
        await until(lambda: len(running(list(nodes), name)) == 1, within=20, why="one copy")
        first = next(node for node in nodes if node.orchestrator.is_running(name))
        await first.orchestrator.rpc.call(f"{name}/set_load", {"value": 25})  # 25 for a target of 10 each
        await until(lambda: len(running(list(nodes), name)) == 3, within=30, why="scaled up to 3")
        view = await nodes[1].orchestrator.get_replicas(name)
        assert view["count"] == 3 and view["rule"]["scaling"]["max"] == 3
        await first.orchestrator.rpc.call(f"{name}/set_load", {"value": 0})  # the load is gone
        await until(lambda: len(running(list(nodes), name)) == 1, within=30, why="scaled down to 1")


async def test_a_labelled_rule_places_copies_only_on_the_nodes_with_the_label(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        zones = {"a1": "a", "a2": "a", "b1": "b"}
        nodes: dict[str, Node] = {}
        for name, zone in zones.items():
            nodes[name], _ = await stack.enter_async_context(
                node_in(tmp_path / name, nursery, {"zone": zone})
            )
        everyone = list(nodes.values())
        for i, node in enumerate(everyone):
            await befriend(node, everyone[i + 1 :])
        for name, node in nodes.items():
            await node.orchestrator.install_service(service_archive(tmp_path / "src" / name, "zoned", GOOD))
        view = await nodes["b1"].orchestrator.set_replicas(
            "zoned", 3, label="zone=a"
        )  # set from outside the zone
        assert view["rule"]["label"] == "zone=a"
        in_zone = sorted(nodes[name].peer_id for name in ("a1", "a2"))
        await until(lambda: running(everyone, "zoned") == in_zone, within=20, why="both zone a nodes")
        await trio.sleep(2 * HEARTBEAT_SECONDS)
        assert running(everyone, "zoned") == in_zone  # 3 wanted, 2 eligible: min(COUNT, eligible)
        nursery.cancel_scope.cancel()
