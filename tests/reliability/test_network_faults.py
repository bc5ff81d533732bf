"""Network faults between real node processes: calls fail clearly within their deadlines, nothing hangs.

The callee is a node process (:mod:`tests.reliability.node_proc`) running
``load_service``; the caller is a node in this process.  The faults: the callee
killed mid-call, frozen (SIGSTOP), answering slower than the deadline, gone and
back on the same identity and address (or another address), the connection
reset under calls in flight by a test hook, and the sending node process of a
distribution killed mid-transfer (the transfer resumes).  Every test is bounded
by ``trio.fail_after``.
"""

from __future__ import annotations

import hashlib
import random
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID

from p2p_orchestrator import ServiceCallError
from p2p_orchestrator.archive import pack_service_bytes
from p2p_orchestrator.node import Node
from p2p_orchestrator.testing import swarm
from tests.helpers import make_service
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


@asynccontextmanager
async def callee(tmp_path: Path, *, port: int = 0, install: bool = True) -> AsyncIterator[NodeProcess]:
    """A node process serving ``load_service`` (installed and started on its first run)."""
    home = tmp_path / "callee"
    if not home.exists():
        write_config(home, node_config(port=port))
    async with node_process(home) as node:
        if install:
            archive = tmp_path / "load_service.tar.gz"
            archive.write_bytes(service_archive(tmp_path / "src", SERVICE, LOAD_SERVICE))
            assert (await node.command("install", archive=str(archive)))["event"] == "done"
            assert (await node.command("start", name=SERVICE))["event"] == "done"
        yield node


@asynccontextmanager
async def caller(tmp_path: Path) -> AsyncIterator[Node]:
    """A node in this process, with short deadlines and quick redials."""
    async with swarm(1, tmp_dir=tmp_path / "caller", config=fast_config()) as nodes:
        yield nodes[0]


async def timed_call(
    node: Node, peer: str, method: str, params: dict[str, object], limit: float
) -> tuple[str, float]:
    """``("ok" or the error code, seconds taken)`` of one remote call."""
    started = trio.current_time()
    try:
        await node.proxy(peer).call_method(f"{SERVICE}/{method}", params, time_limit=limit)
    except ServiceCallError as exc:
        return exc.code, trio.current_time() - started
    return "ok", trio.current_time() - started


async def wait_active(node: Node, peer: str, count: int) -> None:
    """Until ``load_service`` runs exactly ``count`` calls (polled: it is another process)."""
    while (await node.proxy(peer).call_method(f"{SERVICE}/counters"))["active"] != count:  # noqa: ASYNC110
        await trio.sleep(0.05)


async def test_calls_in_flight_fail_fast_when_the_callee_is_killed(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with callee(tmp_path) as remote, caller(tmp_path) as node:
            peer = await node.connect(remote.address)
            outcomes: list[tuple[str, float]] = []

            async def one() -> None:
                outcomes.append(await timed_call(node, peer, "work", {"x": 1, "seconds": 30}, 20))

            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(one)
                await wait_active(node, peer, 20)
                remote.signal(signal.SIGKILL)
            assert len(outcomes) == 20
            assert {code for code, _ in outcomes} == {"channel_closed"}, outcomes
            assert max(seconds for _, seconds in outcomes) < 5, outcomes
            code, seconds = await timed_call(node, peer, "echo", {}, 10)
            assert code == "peer_unreachable" and seconds < 5


async def test_a_frozen_callee_costs_the_deadline_and_no_more(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with callee(tmp_path) as remote, caller(tmp_path) as node:
            peer = await node.connect(remote.address)
            assert await timed_call(node, peer, "echo", {}, 5) == ("ok", pytest.approx(0, abs=5))
            remote.signal(signal.SIGSTOP)
            try:
                async with trio.open_nursery() as nursery:
                    outcomes: list[tuple[str, float]] = []

                    async def one() -> None:
                        outcomes.append(await timed_call(node, peer, "echo", {}, 1.5))

                    for _ in range(10):
                        nursery.start_soon(one)
                assert {code for code, _ in outcomes} == {"call_timeout"}
                assert all(1.4 < seconds < 3.0 for _, seconds in outcomes), outcomes
            finally:
                remote.signal(signal.SIGCONT)
            # thawed, it answers again on the same connection
            with trio.fail_after(10):
                while (await timed_call(node, peer, "echo", {}, 2))[0] != "ok":
                    pass


async def test_a_method_slower_than_the_deadline_is_cancelled_at_the_callee(tmp_path: Path) -> None:
    """100 calls time out; the callee cancels each (it would answer busy if their slots stayed taken).

    The caller has a role on the callee, so only the bound on all remote calls
    applies (a peer without a role gets half of the 64 call slots).
    """
    with trio.fail_after(60):
        async with callee(tmp_path) as remote, caller(tmp_path) as node:
            await remote.command("role", peer=node.peer_id, role="reader")
            peer = await node.connect(remote.address)
            outcomes: list[tuple[str, float]] = []

            async def slow() -> None:
                outcomes.append(await timed_call(node, peer, "work", {"seconds": 30}, 1.0))

            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(slow)
            assert {code for code, _ in outcomes} == {"call_timeout"}
            assert max(seconds for _, seconds in outcomes) < 2.5
            with trio.fail_after(5):
                await wait_active(node, peer, 0)
            fast: list[tuple[str, float]] = []

            async def quick(i: int) -> None:
                fast.append(await timed_call(node, peer, "work", {"x": i}, 10))

            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(quick, i)
            assert {code for code, _ in fast} == {"ok"}


async def test_a_callee_that_vanishes_and_returns_is_redialled_by_peer_id(tmp_path: Path) -> None:
    from tests.reliability.support import free_port

    port = free_port()
    with trio.fail_after(90):
        async with caller(tmp_path) as node:
            async with callee(tmp_path, port=port) as remote:
                peer = await node.connect(remote.address)  # pins the peer
                assert (await timed_call(node, peer, "echo", {}, 5))[0] == "ok"
                remote.signal(signal.SIGKILL)
                await remote.wait_exit()
            assert (await timed_call(node, peer, "echo", {}, 5))[0] in ("channel_closed", "peer_unreachable")
            async with callee(tmp_path, port=port, install=False) as back:
                assert back.peer_id == peer  # same identity
                with trio.fail_after(20):
                    await node.wait_connected(peer)  # the node redialled it by itself
                # and the service came back: its desired state is running
                code, _ = await timed_call(node, peer, "work", {"x": 2}, 10)
                assert code == "ok"


async def test_a_connection_reset_under_calls_in_flight(tmp_path: Path) -> None:
    """A test hook drops the connection: calls in flight fail at once, the next call redials."""
    with trio.fail_after(60):
        async with callee(tmp_path) as remote, caller(tmp_path) as node:
            peer = await node.connect(remote.address)
            for _ in range(3):
                outcomes: list[tuple[str, float]] = []

                async def one(into: list[tuple[str, float]]) -> None:
                    into.append(await timed_call(node, peer, "work", {"seconds": 30}, 20))

                async with trio.open_nursery() as nursery:
                    for _ in range(10):
                        nursery.start_soon(one, outcomes)
                    await wait_active(node, peer, 10)
                    await node.host.disconnect(ID.from_base58(peer))
                assert {code for code, _ in outcomes} == {"channel_closed"}, outcomes
                assert max(seconds for _, seconds in outcomes) < 5
                # the callee cancelled the work of the broken stream
                with trio.fail_after(10):
                    await wait_active(node, peer, 0)


async def test_a_callee_back_at_another_address_is_reached_there(tmp_path: Path) -> None:
    """Regression: a peer that came back on a new port was dialled at its dead old address forever.

    py-libp2p dials one TCP address per peer, the first it knows; the old one
    stayed first (the redial loop even kept it fresh).  Nodes listen on port 0
    by default, so every restart is a new address.
    """
    with trio.fail_after(60):
        async with caller(tmp_path) as node:
            async with callee(tmp_path) as remote:
                peer = await node.connect(remote.address)
                assert (await timed_call(node, peer, "echo", {}, 5))[0] == "ok"
                remote.signal(signal.SIGKILL)
                await remote.wait_exit()
            with trio.move_on_after(1.5):  # the node redials the old address meanwhile
                await node.wait_connected(peer)
            async with callee(tmp_path, install=False) as back:
                assert back.peer_id == peer and back.address != remote.address
                assert await node.connect(back.address) == peer
                assert (await timed_call(node, peer, "echo", {}, 5))[0] == "ok"
                await node.host.disconnect(ID.from_base58(peer))
                # and by peer ID alone: the peer book now has the new address first
                assert await node.connect(peer) == peer
                assert (await timed_call(node, peer, "echo", {}, 5))[0] == "ok"


def blob_archive(root: Path, size: int) -> bytes:
    """The example service at 3.0.0 with ``size`` incompressible bytes: a transfer that takes a while."""
    service = make_service(root, version="3.0.0")
    (service / "assets" / "blob.bin").write_bytes(random.Random(5).randbytes(size))
    return pack_service_bytes(service)


async def verified_chunks(home: Path) -> int:
    """Chunks the receiver at ``home`` has verified so far (its partial transfer's ledger; polled)."""
    ledgers = list((home / "partial").glob("*/ledger"))
    return max(((ledger.stat().st_size - 8) // 4 for ledger in ledgers), default=0)


async def test_a_transfer_cut_by_a_killed_sender_resumes(tmp_path: Path) -> None:
    """The sending node process dies mid-transfer; started again, it sends only what was missing."""
    archive = blob_archive(tmp_path / "src" / "example_service", 16 << 20)
    path = tmp_path / "v3.tar.gz"
    path.write_bytes(archive)
    home = tmp_path / "sender"
    with trio.fail_after(90):
        async with caller(tmp_path) as receiver:
            write_config(home, node_config())
            async with node_process(home) as sender:
                await receiver.set_role(sender.peer_id, "deployer")
                assert (await sender.command("install", archive=str(path)))["event"] == "done"
                await sender.command("connect", address=receiver.listen_addrs[0])
                await sender.send("distribute", name="example_service", targets=[receiver.peer_id])
                with trio.fail_after(30):
                    while await verified_chunks(receiver.orchestrator.home) < 2:  # noqa: ASYNC110
                        await trio.sleep(0.005)
                sender.signal(signal.SIGKILL)
                await sender.wait_exit()
            had = await verified_chunks(receiver.orchestrator.home)
            assert "example_service" not in receiver.orchestrator.store.records
            async with node_process(home) as again:
                await again.command("connect", address=receiver.listen_addrs[0])
                answer = await again.command("distribute", name="example_service", targets=[receiver.peer_id])
            entry = answer["result"]["results"][receiver.peer_id]
            assert entry["success"], entry
            (only,) = entry["result"]["transfer"]["tries"]
            assert only["receiver_had"] >= had * (1 << 20) > 0
            assert only["receiver_had"] + only["bytes_sent"] == len(archive)
            assert (
                receiver.orchestrator.store.get("example_service").current.archive_hash
                == hashlib.sha256(archive).hexdigest()
            )
