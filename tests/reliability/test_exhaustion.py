"""Strangers cannot exhaust a node: its memory and its connections stay bounded, on a real node process.

Each test runs a node process (:mod:`tests.reliability.node_proc`), a *friend* (a node in this
process with a role there) that calls it every 50 ms throughout and must never fail, and
attackers: bare libp2p hosts with fresh keys, which write raw Yamux frames where a cheat needs
them (past the receive window, on streams already reset).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.stream_muxer.yamux.yamux import TYPE_DATA, YAMUX_HEADER_FORMAT

from p2p_orchestrator.node import Node
from tests.node.support import RPC, fast_config, handshake, raw_peer
from tests.reliability.support import NodeProcess, node_config, node_process, rss_bytes, write_config

IDENTIFY_PUSH = TProtocol("/ipfs/id/push/1.0.0")
MiB = 1024 * 1024


@asynccontextmanager
async def victim_and_friend(tmp_path: Path, **node: Any) -> AsyncIterator[tuple[NodeProcess, Node]]:
    """A node process, and a friend node in this process with the ``reader`` role there."""
    home = tmp_path / "victim"
    write_config(home, node_config(node=node))
    async with node_process(home) as victim, Node.open(tmp_path / "friend", config=fast_config()) as friend:
        await victim.command("role", peer=friend.peer_id, role="reader")
        await friend.connect(victim.address)
        yield victim, friend


class Watch:
    """The friend's calls (each must succeed) and the victim's peak RSS, sampled while attacks run."""

    def __init__(self, victim: NodeProcess, friend: Node) -> None:
        self.victim, self.friend = victim, friend
        self.calls = 0
        self.failures: list[str] = []
        self.peak_rss = 0
        self.calling = trio.Lock()
        """Held during each call: hold it to change the friend's connection between calls."""

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sample)
            task_status.started()
            proxy = self.friend.proxy(self.victim.peer_id)
            while True:
                async with self.calling:
                    try:
                        with trio.fail_after(10):
                            await proxy.call_method("orchestrator/list_services", {})
                        self.calls += 1
                    except Exception as exc:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                await trio.sleep(0.05)

    async def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, rss_bytes(self.victim.pid))
            await trio.sleep(0.02)


async def stranger_stream(host: IHost, victim: NodeProcess, protocol: TProtocol = RPC) -> Any:
    """A stream of ``protocol`` from ``host`` to the victim (connecting first)."""
    info = info_from_p2p_addr(multiaddr.Multiaddr(victim.address))
    await host.connect(info)
    return await host.new_stream(info.peer_id, [protocol])


async def overrun(stream: Any, total: int, frame: int = MiB) -> int:
    """Write ``total`` bytes of DATA frames on ``stream`` whatever its window or state; bytes written."""
    conn, sid = stream.muxed_conn, stream.muxed_stream.stream_id
    data = struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_DATA, 0, sid, frame) + bytes(frame)
    sent = 0
    with trio.move_on_after(20):
        try:
            while sent < total:
                await conn._write_frame(data)
                sent += frame
        except Exception:  # the victim closed the connection: this attacker is done
            pass
    return sent


async def test_a_stranger_writing_past_its_windows_costs_a_bounded_amount_of_memory(tmp_path: Path) -> None:
    """Past the window on a stream refused busy, on py-libp2p's identify/push, on served streams."""
    attempted = 256 * MiB
    with trio.fail_after(240):
        async with victim_and_friend(tmp_path, max_streams_per_peer=4) as (victim, friend):
            watch = Watch(victim, friend)
            async with trio.open_nursery() as nursery:
                await nursery.start(watch.run)
                sent = 0

                async def one_round(protocol: TProtocol, busy: bool) -> int:
                    async with raw_peer() as attacker:
                        held = [await stranger_stream(attacker, victim) for _ in range(4 if busy else 0)]
                        stream = await stranger_stream(attacker, victim, protocol)
                        written = await overrun(stream, 32 * MiB)
                        # Once reset, more streams; the third overrun closes the connection.
                        for _ in range(3):
                            try:
                                extra = await stranger_stream(attacker, victim, protocol)
                            except Exception:
                                break
                            written += await overrun(extra, 8 * MiB)
                        del held
                        return written

                await one_round(RPC, busy=True)  # warm the victim's code paths up once
                baseline = rss_bytes(victim.pid)
                watch.peak_rss = baseline
                rounds = [(RPC, True), (IDENTIFY_PUSH, False), (RPC, False)]
                while sent < attempted:
                    for protocol, busy in rounds:
                        sent += await one_round(protocol, busy)
                await trio.sleep(0.5)  # the friend calls on after the attack
                nursery.cancel_scope.cancel()
    growth = watch.peak_rss - baseline
    print(f"sent {sent / MiB:.0f} MiB past the windows; victim RSS grew {growth / MiB:.1f} MiB at peak")
    assert sent >= attempted
    assert growth < 48 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB for {sent / MiB:.0f} MiB sent"
    assert watch.failures == [] and watch.calls > 20


async def test_a_thousand_stranger_connections_do_not_lock_out_a_peer_with_a_role(tmp_path: Path) -> None:
    """500 strangers that finish their handshake and 500 sockets that never do, all held open."""
    with trio.fail_after(240):
        async with (
            victim_and_friend(tmp_path, max_stranger_connections=64, max_pending_connections=64) as (
                victim,
                friend,
            ),
            Node.open(tmp_path / "third", config=fast_config()) as third,
        ):
            watch = Watch(victim, friend)
            held: list[trio.SocketStream] = []
            outcomes = {"established": 0, "refused": 0}
            async with trio.open_nursery() as nursery:
                await nursery.start(watch.run)

                async def stranger() -> None:
                    try:
                        held.append(await handshake(victim.address))
                        outcomes["established"] += 1
                    except Exception:
                        outcomes["refused"] += 1

                async def silent() -> None:
                    address = multiaddr.Multiaddr(victim.address)
                    held.append(
                        await trio.open_tcp_stream(
                            address.value_for_protocol("ip4"), int(address.value_for_protocol("tcp"))
                        )
                    )

                limiter = trio.CapacityLimiter(50)

                async def attempt(make: Callable[[], Awaitable[None]]) -> None:
                    async with limiter:
                        await make()

                async with trio.open_nursery() as attackers:
                    for i in range(1000):
                        attackers.start_soon(attempt, stranger if i % 2 else silent)
                # While all that is held: the friend reconnects, and the victim dials out.
                async with watch.calling:
                    await friend.host.disconnect(
                        info_from_p2p_addr(multiaddr.Multiaddr(victim.address)).peer_id
                    )
                    await friend.connect(victim.address)
                dialled = await victim.command("connect", address=third.listen_addrs[0])
                stats = (await victim.command("stats"))["result"]["node"]
                await trio.sleep(0.5)
                nursery.cancel_scope.cancel()
            for sock in held:
                await sock.aclose()
    print(f"strangers: {outcomes}; victim gate: {stats}; friend calls: {watch.calls}")
    assert dialled["event"] == "done", dialled
    assert watch.failures == [] and watch.calls > 20
    assert stats["inbound_connections_established"] <= 8 + 1  # strangers from one address, and the friend
    assert stats["inbound_connections_dropped"] >= 400
