"""A node process under 200 concurrent remote callers and 10 concurrent installs.

The callee is a real node process (:mod:`tests.reliability.node_proc`) running
``load_service``; the callers are four nodes in this process, 50 callers each.
Every call must come back with the right answer or, where a limit is reached,
with ``busy``; never a timeout or another error.  The callee must stay within
its limits (streams, ``max_concurrent_calls``, the call admission bounds of
:mod:`p2p_orchestrator.runtime.admission`) and its memory must stay bounded.

The throughput and p99 of the same load are the ``load_200_callers`` figure of
``scripts/bench.py``.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator import OrchestratorError
from p2p_orchestrator.node import Node
from p2p_orchestrator.runtime.admission import AdmissionLimits
from p2p_orchestrator.testing import swarm
from tests.node.support import fast_config
from tests.reliability.support import (
    LOAD_SERVICE,
    NodeProcess,
    node_config,
    node_process,
    service_archive,
    write_config,
)

SERVICE = "load_service"
MIB = 1 << 20
DEADLINES = {"read_timeout": 10.0, "write_timeout": 10.0, "idle_timeout": 60.0}
"""The default stream deadlines: under load on a shared 2-core machine a peer may well not be
scheduled for a second, and the short deadlines of the other suites would reset its streams
(that is what they are for; this suite is about load)."""


async def stats(server: NodeProcess) -> dict[str, Any]:
    answer = await server.command("stats")
    assert answer["event"] == "done", answer
    result: dict[str, Any] = answer["result"]
    return result


async def start_callee(server: NodeProcess, tmp_path: Path) -> None:
    archive = tmp_path / "load_service.tar.gz"
    archive.write_bytes(service_archive(tmp_path / "src", SERVICE, LOAD_SERVICE))
    assert (await server.command("install", archive=str(archive)))["event"] == "done"
    assert (await server.command("start", name=SERVICE))["event"] == "done"


async def load(
    clients: list[Node], peer: str, *, callers: int, calls: int, seconds: float
) -> collections.Counter[str]:
    """``callers`` concurrent callers spread over ``clients``, ``calls`` each: the outcomes by kind."""
    outcomes: collections.Counter[str] = collections.Counter()

    async def caller(node: Node, number: int) -> None:
        proxy = node.proxy(peer)
        for call in range(calls):
            x = number * 1000 + call
            try:
                answer = await proxy.call_method(
                    f"{SERVICE}/work", {"x": x, "seconds": seconds}, time_limit=30
                )
            except OrchestratorError as exc:
                outcomes[exc.code] += 1
                if outcomes[exc.code] == 1:
                    outcomes[f"first {exc.code}: {exc.message}"] = 0  # what it said, for the failure message
            else:
                outcomes["ok" if answer == {"x": x, "double": 2 * x} else f"wrong: {answer}"] += 1

    async with trio.open_nursery() as nursery:
        for number in range(callers):
            nursery.start_soon(caller, clients[number % len(clients)], number)
    return outcomes


async def installs(admin: Node, peer: str, tmp_path: Path, count: int) -> list[str]:
    """``count`` different services installed at once through ``admin``: each result or error code."""
    results: list[str] = []

    async def one(index: int) -> None:
        archive = service_archive(
            tmp_path / "many", f"svc_{index}", LOAD_SERVICE.replace(SERVICE, f"svc_{index}")
        )
        try:
            answer = await admin.proxy(peer).call_method(
                "orchestrator/install_service", {"archive_data": archive}, time_limit=60
            )
        except OrchestratorError as exc:
            results.append(exc.code)
        else:
            results.append("ok" if answer["service_name"] == f"svc_{index}" else str(answer))

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return results


async def run_load(tmp_path: Path, *, calls: int) -> None:
    home = tmp_path / "callee"
    write_config(home, node_config(node=DEADLINES))
    with trio.fail_after(240):
        async with (
            node_process(home) as server,
            swarm(4, tmp_dir=tmp_path / "callers", config=fast_config(**DEADLINES), connect=False) as clients,
        ):
            await start_callee(server, tmp_path)
            for index, client in enumerate(clients):
                await server.command("role", peer=client.peer_id, role="admin" if index == 0 else "reader")
                await client.connect(server.address)
            before = await stats(server)
            async with trio.open_nursery() as nursery:
                results: dict[str, Any] = {}

                async def calls_part() -> None:
                    results["calls"] = await load(
                        list(clients), server.peer_id, callers=200, calls=calls, seconds=0.002
                    )

                async def installs_part() -> None:
                    results["installs"] = await installs(clients[0], server.peer_id, tmp_path, 10)

                nursery.start_soon(calls_part)
                nursery.start_soon(installs_part)
            after = await stats(server)
            counters = await clients[1].proxy(server.peer_id).call_method(f"{SERVICE}/counters")
    assert +results["calls"] == {"ok": 200 * calls}, results["calls"]
    assert results["installs"] == ["ok"] * 10
    assert counters["peak"] <= 64  # max_concurrent_calls
    assert after["node"]["inbound_streams_peak"] <= 128
    assert after["admission"][SERVICE]["peak"] <= AdmissionLimits.for_slots(64).remote
    assert after["rss"] - before["rss"] < 64 * MIB, (before["rss"], after["rss"])


async def test_200_callers_and_10_installs_are_all_answered(tmp_path: Path) -> None:
    await run_load(tmp_path, calls=3)


@pytest.mark.slow
async def test_200_callers_and_10_installs_are_all_answered_long(tmp_path: Path) -> None:
    await run_load(tmp_path, calls=50)


async def test_over_its_limits_a_node_answers_busy_and_stays_bounded(tmp_path: Path) -> None:
    """Small limits and callers without a role: the overflow is ``busy``, at once, and nothing grows."""
    home = tmp_path / "callee"
    write_config(
        home,
        node_config(node={"max_in_flight_per_stream": 16, **DEADLINES}, runtime={"max_concurrent_calls": 8}),
    )
    limits = AdmissionLimits.for_slots(8)
    with trio.fail_after(120):
        async with (
            node_process(home) as server,
            swarm(
                4, tmp_dir=tmp_path / "callers", config=fast_config(**DEADLINES), connect=False, roles=None
            ) as clients,
        ):
            await start_callee(server, tmp_path)
            for client in clients:
                await client.connect(server.address)
            before = await stats(server)
            outcomes = await load(list(clients), server.peer_id, callers=200, calls=3, seconds=0.05)
            after = await stats(server)
            counters = await clients[0].proxy(server.peer_id).call_method(f"{SERVICE}/counters")
    assert set(+outcomes) == {"ok", "busy"}, outcomes
    assert outcomes["ok"] >= 8 and outcomes["busy"] > 0
    assert counters["peak"] <= 8
    assert after["admission"][SERVICE]["peak"] <= limits.unknown_peers
    assert after["admission"][SERVICE]["refused"] > 0
    assert after["rss"] - before["rss"] < 32 * MIB, (before["rss"], after["rss"])
