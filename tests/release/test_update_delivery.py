"""A published release is delivered to the followers that want it by the swarm, on real nodes.

The publisher announces with ``deliver``; each follower that wants the release answers
``delivery`` and waits while the publisher sends it to all of them at once (offers of purpose
``update``, the followers passing chunks to each other).  A follower accepts such a delivery from
any peer with a role, but only of the very release it chose: nobody gets code onto it this way
that it would not have fetched itself.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

import p2p_orchestrator.orchestrator.updates as updates_module
from p2p_orchestrator.config import OrchestratorConfig
from tests.distribution.support import partials_gone, transfer_swarm
from tests.release.test_updates import NAME, PUBLISHER, Watch, following, release, versions
from tests.runtime.support import service_archive

BODY = """
class Run(BaseService):
    @service_method()
    async def hello(self):
        return "hello"
"""


def big_release(tmp_path: Path, version: str) -> tuple[bytes, bytes]:
    """A release of NAME with about 1.5 MiB of incompressible assets: several swarm chunks."""
    blob = base64.b64encode(os.urandom(2_000_000)).decode("ascii")
    archive = service_archive(tmp_path / "big", NAME, BODY, version=version, files={"assets/blob.txt": blob})
    now = int(time.time())
    statement = PUBLISHER.sign(
        NAME, version, hashlib.sha256(archive).hexdigest(), len(archive), issued_at=now, expires_at=now + 3600
    )
    return archive, statement.to_bytes()


async def test_a_release_is_delivered_by_the_swarm_to_followers_that_only_let_the_publisher_read(
    tmp_path: Path,
) -> None:
    # followers give the publisher and each other the reader role: the publisher may not deploy
    # anywhere; it gives them nothing, so they cannot learn the release by asking it first
    def roles(i: int, j: int) -> str | None:
        return None if i == 0 else "reader"

    async with (
        transfer_swarm(4, tmp_path, configure=following(), roles=roles) as nodes,
        trio.open_nursery() as nursery,
    ):
        watch = Watch(list(nodes))
        await watch.run(nursery)
        archive, statement = big_release(tmp_path, "1.0.0")
        published = await nodes[0].orchestrator.publish_release(archive, statement)
        followers = [node.peer_id for node in nodes[1:]]
        assert all(published["announced"][peer]["delivery"] for peer in followers)
        delivered = published["delivered"]
        assert delivered["successful_distributions"] == 3, delivered
        for index in (1, 2, 3):
            event = await watch.wait(index, "update_installed", "1.0.0")
            assert event.data["from_peer"] == nodes[0].peer_id
            assert nodes[index].orchestrator.is_running(NAME)
        assert await versions(nodes) == ["1.0.0"] * 4
        sent = sum(entry["result"]["transfer"]["bytes_sent"] for entry in delivered["results"].values())
        from_peers = sum(
            entry["result"]["transfer"]["bytes_from_peers"] for entry in delivered["results"].values()
        )
        assert from_peers > 0  # the followers passed chunks to each other...
        assert sent < 2 * len(archive)  # ...so the publisher sent well under the 3 copies a push would
        nursery.cancel_scope.cancel()


def following_another() -> Callable[[OrchestratorConfig], OrchestratorConfig]:
    """Each node trusts PUBLISHER but follows another service: it never asks for NAME's releases."""

    def configure(config: OrchestratorConfig) -> OrchestratorConfig:
        config = following()(config)
        return dataclasses.replace(config, updates=dataclasses.replace(config.updates, follow=("another",)))

    return configure


async def test_a_delivery_nobody_asked_for_is_refused_before_a_byte_is_written(tmp_path: Path) -> None:
    async with transfer_swarm(3, tmp_path, configure=following_another(), roles="reader") as nodes:
        archive, statement = release(tmp_path, "1.0.0")
        await nodes[0].orchestrator.install_service(archive, release=statement)  # installed, not announced
        distribution = nodes[0].orchestrator._open.distribution  # a peer that pushes unasked
        result = await distribution.distribute(
            NAME,
            [nodes[1].peer_id],
            force_reinstall=False,
            auto_start=True,
            strategy="push",
            concurrency=None,
            purpose="update",
        )
        entry = result["results"][nodes[1].peer_id]
        assert not entry["success"] and "update_not_expected" in entry["error"]
        # without the update purpose, a reader may not push at all
        plain = await distribution.distribute(
            NAME,
            [nodes[2].peer_id],
            force_reinstall=False,
            auto_start=True,
            strategy="push",
            concurrency=None,
        )
        assert "permission_denied" in plain["results"][nodes[2].peer_id]["error"]
        assert await versions(nodes) == ["1.0.0", None, None]
        assert await partials_gone(nodes[1].orchestrator.home) and await partials_gone(
            nodes[2].orchestrator.home
        )


async def test_a_follower_fetches_the_release_itself_when_an_agreed_delivery_never_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(updates_module, "DELIVERY_WAIT", 0.5)
    # node 0 announces with an offer to deliver but never does (and lets node 1 read nothing, so
    # node 1 cannot learn the release from it by asking); node 2 holds the same release
    readers = {(1, 0), (1, 2), (2, 1)}  # (i, j): node i gives node j the reader role

    def roles(i: int, j: int) -> str | None:
        return "reader" if (i, j) in readers else None

    async with (
        transfer_swarm(3, tmp_path, configure=following(), roles=roles, connect=False) as nodes,
        trio.open_nursery() as nursery,
    ):
        watch = Watch(list(nodes))
        await watch.run(nursery)
        archive, statement = release(tmp_path, "1.0.0")
        for holder in (nodes[0], nodes[2]):
            await holder.orchestrator.install_service(archive, release=statement)
        await nodes[1].connect(nodes[0].listen_addrs[0])
        answer = await nodes[0].call_remote(
            nodes[1].peer_id, "orchestrator/announce_release", {"release": statement, "deliver": True}
        )
        assert answer == {"accepted": True, "reason": "accepted", "delivery": True}
        assert await versions(nodes) == ["1.0.0", None, "1.0.0"]  # it waits for the delivery...
        await nodes[1].connect(nodes[2].listen_addrs[0])  # (and hears that node 2 holds it too)
        event = await watch.wait(1, "update_installed", "1.0.0", within=15)  # ...then fetches it
        assert event.data["from_peer"] == nodes[2].peer_id
        nursery.cancel_scope.cancel()


async def test_outside_its_window_a_follower_declines_a_delivery(tmp_path: Path) -> None:
    import datetime

    now = datetime.datetime.now()
    closed = ((now + datetime.timedelta(hours=2)).time(), (now + datetime.timedelta(hours=3)).time())
    async with transfer_swarm(2, tmp_path, configure=following(window=closed)) as nodes:
        archive, statement = release(tmp_path, "1.0.0")
        published = await nodes[0].orchestrator.publish_release(archive, statement)
        answer = published["announced"][nodes[1].peer_id]
        # accepted, or known already (node 1 may have asked node 0 between its install and this):
        # either way it wants the release, and declines the delivery only for the window
        assert answer["reason"] in ("accepted", "known") and not answer["delivery"]
        assert published["delivered"] is None
        assert await versions(nodes) == ["1.0.0", None]
