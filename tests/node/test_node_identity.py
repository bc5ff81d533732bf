"""Identity persistence, the persisted peer book, re-dial by peer ID, reconnect, and start-up checks."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from p2p_orchestrator.config import ConfigError, config_from_dict
from p2p_orchestrator.node import IdentityError, Node
from p2p_orchestrator.node.identity import IDENTITY_FILE_NAME, load_or_create_identity, peer_id_of
from p2p_orchestrator.node.peerbook import PEERS_FILE_NAME, PeerBook
from p2p_orchestrator.testing import swarm
from tests.node.support import fast_config


def test_identity_is_created_private_and_reloaded(tmp_path: Path) -> None:
    first = peer_id_of(load_or_create_identity(tmp_path))
    key_file = tmp_path / IDENTITY_FILE_NAME
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert peer_id_of(load_or_create_identity(tmp_path)) == first
    assert first.startswith("12D3KooW")  # an Ed25519 peer ID
    assert not [p for p in tmp_path.iterdir() if p.name != IDENTITY_FILE_NAME]  # no temporary left


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_identity_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    load_or_create_identity(tmp_path)
    (tmp_path / IDENTITY_FILE_NAME).chmod(mode)
    with pytest.raises(IdentityError) as refused:
        load_or_create_identity(tmp_path)
    assert refused.value.code == "identity_insecure"
    assert "chmod 600" in refused.value.message


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x08\x01\x12\x03abc", b"x" * 10_000])
def test_corrupt_identity_is_refused(tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / IDENTITY_FILE_NAME
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    with pytest.raises(IdentityError) as refused:
        load_or_create_identity(tmp_path)
    assert refused.value.code == "identity_corrupt"
    assert key_file.read_bytes() == content  # never replaced


async def test_node_refuses_to_start_with_an_unsafe_identity(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    (tmp_path / IDENTITY_FILE_NAME).chmod(0o644)
    with pytest.raises(IdentityError), trio.fail_after(20):
        async with Node.open(tmp_path, config=fast_config()):
            pass  # pragma: no cover - never reached


async def test_peer_id_survives_restart_and_peers_are_redialled_by_id(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with swarm(1, tmp_dir=tmp_path / "b", config=fast_config()) as others:
            b = others[0]
            home = tmp_path / "a"
            async with Node.open(home, config=fast_config()) as a:
                first_id = a.peer_id
                await b.set_role(first_id, "reader")
                assert a.listen_addrs[0].endswith(f"/p2p/{first_id}")
                assert await a.connect(b.listen_addrs[0]) == b.peer_id
                assert [p.peer_id for p in a.peers() if p.pinned] == [b.peer_id]
            book = json.loads((home / PEERS_FILE_NAME).read_text())
            assert b.peer_id in book["peers"]

            async with Node.open(home, config=fast_config()) as a:
                assert a.peer_id == first_id
                # pinned peers are redialled at start, with nothing but the peer book
                await a.wait_connected(b.peer_id)
                await a.host.disconnect(a.host.get_connected_peers()[0])
                assert not a.is_connected(b.peer_id)
                # and by peer ID alone
                assert await a.connect(b.peer_id) == b.peer_id
                status = await a.proxy(b.peer_id).call_method("orchestrator/get_orchestrator_status")
                assert status["orchestrator_status"] == "running" and status["home"] == "<redacted>"
                # b knows a by the same ID as before the restart
                assert b.is_connected(first_id)


async def test_dropped_connections_to_pinned_peers_are_reestablished(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with swarm(3, tmp_dir=tmp_path, config=fast_config()) as nodes:
            a, b, c = nodes
            for _ in range(3):  # b drops a (a pinned b when it dialled it): a reconnects
                await b.host.disconnect(a.host.get_id())
                await a.wait_connected(b.peer_id)
                assert (await a.proxy(b.peer_id).call_method("orchestrator/list_services"))["services"] == {}
            # c was dialled by a and b; calls from c to a find the connection again by themselves
            await a.host.disconnect(c.host.get_id())
            assert (await c.proxy(a.peer_id).call_method("orchestrator/list_services"))["services"] == {}


async def test_bootstrap_peers_are_dialled_at_start(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with swarm(1, tmp_dir=tmp_path / "b", config=fast_config()) as others:
            b = others[0]
            config = fast_config()
            config = replace(config, node=replace(config.node, bootstrap=(b.listen_addrs[0],)))
            async with Node.open(tmp_path / "a", config=config) as a:
                await a.wait_connected(b.peer_id)
                assert [(p.peer_id, p.pinned) for p in a.peers()] == [(b.peer_id, True)]


async def test_bad_node_configuration_is_refused_at_start(tmp_path: Path) -> None:
    config = fast_config()
    with pytest.raises(ConfigError, match="not a TCP address"), trio.fail_after(20):
        async with Node.open(
            tmp_path, config=replace(config, node=replace(config.node, listen=("/ip4/127.0.0.1/udp/0",)))
        ):
            pass  # pragma: no cover - never reached


def test_node_and_access_sections_are_strict() -> None:
    peer = "12D3KooWEPXcvta82Xd1aMKZUZCWFFgPVsdjn3BqWfBMfJ5QqHSi"
    config = config_from_dict(
        {
            "node": {
                "listen": ["/ip4/0.0.0.0/tcp/4001"],
                "mdns": True,
                "call_timeout": 5,
                "max_streams_per_peer": 4,
            },
            "access": {"roles": {peer: "reader"}, "unknown_peers": "none"},
        }
    )
    assert config.node.listen == ("/ip4/0.0.0.0/tcp/4001",) and config.node.call_timeout == 5.0
    assert config.access.roles == {peer: "reader"} and config.access.unknown_peers == "none"
    for bad in (
        {"node": {"listen": "/ip4/0.0.0.0/tcp/1"}},
        {"node": {"listen": []}},
        {"node": {"bootstrap": ["/ip4/127.0.0.1/tcp/1"]}},
        {"node": {"read_timeout": 0}},
        {"node": {"mdns": "yes"}},
        {"node": {"nodes": 1}},
        {"access": {"roles": {peer: "root"}}},
        {"access": {"roles": {"alice": "admin"}}},
        {"access": {"unknown_peers": "all"}},
        {"access": {"extra": 1}},
    ):
        with pytest.raises(ConfigError):
            config_from_dict(bad)


def test_peer_book_survives_corruption_and_bounds_addresses(tmp_path: Path) -> None:
    peer = "12D3KooWEPXcvta82Xd1aMKZUZCWFFgPVsdjn3BqWfBMfJ5QqHSi"
    book = PeerBook(tmp_path)
    for port in range(20):
        book.record(peer, [f"/ip4/127.0.0.1/tcp/{port}"], pin=port == 0)
    known = PeerBook(tmp_path).get(peer)
    assert known is not None and known.pinned and len(known.addrs) == 8
    assert known.addrs[0] == "/ip4/127.0.0.1/tcp/19"
    (tmp_path / PEERS_FILE_NAME).write_text("{not json")
    assert PeerBook(tmp_path).peers() == []
    assert (tmp_path / (PEERS_FILE_NAME + ".corrupt")).exists()


class _Until(logging.Handler):
    """Collects the node's log messages and sets ``event`` when one contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.INFO)
        self.text, self.event, self.messages = text, trio.Event(), list[str]()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.text in self.messages[-1]:
            self.event.set()


async def test_reconnecting_gives_up_after_the_configured_attempts(tmp_path: Path) -> None:
    config = fast_config(reconnect_attempts=3, reconnect_delay=0.05, reconnect_max_delay=0.1)
    logger = logging.getLogger("p2p_orchestrator.node")
    watch = _Until("Gave up connecting")
    logger.addHandler(watch)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with trio.fail_after(30):
            async with Node.open(tmp_path / "a", config=config) as a:
                async with swarm(1, tmp_dir=tmp_path / "b", config=fast_config()) as others:
                    b_id = await a.connect(others[0].listen_addrs[0])
                # b is gone: a tries 3 times, backing off, then gives up
                start = trio.current_time()
                await watch.event.wait()
                assert trio.current_time() - start < 5.0
                attempts = [m for m in watch.messages if m.startswith("Reconnect ")]
                assert [m.split()[1] for m in attempts] == ["1/3", "2/3", "3/3"]
                assert all(b_id in m for m in attempts)
                assert not a.is_connected(b_id)
    finally:
        logger.removeHandler(watch)
        logger.setLevel(old_level)


async def test_mdns_discovery_lets_peers_connect_by_id(tmp_path: Path) -> None:
    """Opt-in mDNS: discovered peers land in the peerstore, so a peer ID alone is enough."""
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config(mdns=True), connect=False) as nodes:
            a, b = nodes
            for _ in range(50):  # zeroconf runs in its own thread: poll what it has found
                if (
                    a.host.get_peerstore().addrs(b.host.get_id())
                    if b.host.get_id() in a.host.get_peerstore().peer_ids()
                    else []
                ):
                    break
                await trio.sleep(0.2)
            else:
                pytest.skip("no mDNS answer within 10 s: multicast is unavailable here")
            assert await a.connect(b.peer_id) == b.peer_id
            assert (await a.proxy(b.peer_id).call_method("orchestrator/list_services"))["services"] == {}


async def test_a_peer_cannot_steer_where_the_node_dials_it(tmp_path: Path) -> None:
    """identify/push lets a connected peer announce any addresses: they neither steer dials nor reach peers.json."""
    import multiaddr
    from libp2p.identity.identify_push.identify_push import push_identify_to_peer

    # addresses of other hosts (loopback ones, so that nothing leaves the machine if one were dialled)
    fakes = [multiaddr.Multiaddr(f"/ip4/127.0.{n // 250}.{2 + n % 250}/tcp/4001") for n in range(300)]
    with trio.fail_after(60):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config(), roles=None) as nodes:
            victim, liar = nodes
            liar.host.get_addrs = lambda: fakes  # type: ignore[method-assign]
            assert await push_identify_to_peer(liar.host, victim.host.get_id())
            store = victim.host.get_peerstore()
            with trio.fail_after(10):  # the library took them in: the attack reached its target
                while not set(fakes) <= set(store.addrs(liar.host.get_id())):  # noqa: ASYNC110 - no event
                    await trio.sleep(0.01)
            for peer in victim.host.get_connected_peers():
                await victim.host.disconnect(peer)
            assert await victim.connect(liar.peer_id) == liar.peer_id  # by peer ID: the address it saw
            (known,) = [peer for peer in victim.peers() if peer.peer_id == liar.peer_id]
            assert not {str(a) for a in fakes} & set(known.addrs)
            saved = json.loads((victim.orchestrator.home / PEERS_FILE_NAME).read_text())
            assert not {str(a) for a in fakes} & set(saved["peers"][liar.peer_id]["addrs"])
