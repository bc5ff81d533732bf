"""The inbound gate's policy alone (no network), and the connection-slot leak it closes, on a real node."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import multiaddr
import trio
from libp2p.abc import INetConn
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2p_orchestrator.node import Node
from p2p_orchestrator.node.host._inbound_gate import GateLimits, InboundGate
from tests.node.support import fast_config, handshake, raw_peer

FRIEND = "friend"
LIMITS = GateLimits(max_pending=4, max_pending_per_ip=2, max_strangers=3, max_strangers_per_ip=2, capacity=5)


def gate() -> InboundGate:
    return InboundGate(LIMITS, lambda peer: peer.startswith(FRIEND))


def conn() -> INetConn:
    return cast(INetConn, object())


async def test_a_flood_of_handshakes_from_one_address_drops_its_own_oldest_first() -> None:
    g = gate()
    other = g.arrive(("10.0.0.2", 1))
    first, second = g.arrive(("10.0.0.1", 1)), g.arrive(("10.0.0.1", 2))
    third = g.arrive(("10.0.0.1", 3))  # a third from that address: its oldest goes
    assert first.scope.cancel_called and not second.scope.cancel_called
    assert not other.scope.cancel_called and g.pending() == [other, second, third]
    g.arrive(("10.0.0.3", 1))
    g.arrive(("10.0.0.4", 1))  # over 4 in all: the oldest of all goes
    assert other.scope.cancel_called and g.dropped == 2


async def test_strangers_get_a_bounded_share_and_per_address_and_friends_always_get_in() -> None:
    g = gate()
    tickets = [g.arrive((f"10.0.0.{i % 2}", i)) for i in range(4)]
    for i, ticket in enumerate(tickets):
        assert ticket.remote is not None
        g.admit(ticket.remote, f"stranger{i}", conn())
    # two per address, three in all: the fourth stranger is closed once its handshake names it
    assert [t.scope.cancel_called for t in tickets] == [False, False, False, True]
    friends = []
    for i in range(3):
        friends.append(g.arrive(("10.0.0.0", 100 + i)))
        g.admit(("10.0.0.0", 100 + i), f"{FRIEND}{i}", conn())
    # at capacity (5), each friend makes room by closing the oldest stranger
    assert not any(t.scope.cancel_called for t in friends)
    assert tickets[0].scope.cancel_called and not tickets[1].scope.cancel_called
    assert len(g.established()) == 5


async def test_a_closed_connection_ends_its_ticket() -> None:
    g = gate()
    ticket = g.arrive(("10.0.0.1", 1))
    c = conn()
    g.admit(("10.0.0.1", 1), f"{FRIEND}1", c)
    g.closed(c)
    assert ticket.scope.cancel_called
    g.leave(ticket)
    assert g.established() == [] and g.pending() == []


async def test_a_node_still_accepts_after_its_three_hundredth_inbound_connection(tmp_path: Path) -> None:
    """py-libp2p kept a slot of 300 for every inbound connection ever made, closed or not."""
    with trio.fail_after(120):
        async with Node.open(tmp_path / "node", config=fast_config()) as node, raw_peer() as peer:
            info = info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0]))
            network: Any = node.host.get_network()
            for _ in range(310):
                sock = await handshake(node.listen_addrs[0])
                await sock.aclose()
            with trio.fail_after(20):
                while network.get_connections():  # noqa: ASYNC110 - the node seeing the closes has no event
                    await trio.sleep(0.01)
            await peer.connect(info)
            assert node.stats()["inbound_connections_established"] == 1
            assert network._inbound_limiter.borrowed_tokens == 1
