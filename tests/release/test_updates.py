"""Nodes that follow a service install its newer trusted releases themselves, on real nodes.

They learn of a release by announcement (``publish``) or by asking their peers
(``list_releases``, every ``check_interval``), fetch it from a peer that holds it, start it,
and report an update that fails to start as ``update_failed``, never to try that version again.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator import Busy, Orchestrator, PermissionDenied, ReleaseError
from p2p_orchestrator.callers import Caller, Permission
from p2p_orchestrator.config import OrchestratorConfig, ServiceSettings, UpdateSettings
from p2p_orchestrator.events import Event
from p2p_orchestrator.node import Node
from p2p_orchestrator.orchestrator.updates import ANNOUNCE_BURST, ANNOUNCE_RATE, MAX_RATE_PEERS, PeerRateLimit
from p2p_orchestrator.release import Publisher, PublisherKey, ReleaseStatement
from tests.distribution.support import transfer_swarm
from tests.runtime.support import fast_config, service_archive

NAME = "follow_me"
PUBLISHER = PublisherKey.generate()
STRANGER = PublisherKey.generate()

GOOD = """
class Run(BaseService):
    @service_method()
    async def hello(self):
        return "hello"
"""
REFUSES_HERE = (
    """
if os.path.exists("refuse_to_start"):
    raise RuntimeError("this node refuses this version")
"""
    + GOOD
)
SICK_HERE = """
class Run(BaseService):
    async def health_check(self):
        return not os.path.exists("sick")

    @service_method()
    async def hello(self):
        return "hello"
"""
HEALTH = {"interval": 0.1, "timeout": 1.0, "failures": 2}


def following(
    *, check_interval: float = 3600.0, window: tuple[datetime.time, datetime.time] | None = None
) -> Callable[[OrchestratorConfig], OrchestratorConfig]:
    """Each node trusts PUBLISHER and follows NAME (auto-start stays off: a follower starts it anyway)."""

    def configure(config: OrchestratorConfig) -> OrchestratorConfig:
        return dataclasses.replace(
            config,
            publishers=(Publisher("ci", PUBLISHER.public_key, ("*",)),),
            updates=UpdateSettings(follow=(NAME,), check_interval=check_interval, window=window),
        )

    return configure


def release(
    tmp_path: Path,
    version: str,
    body: str = GOOD,
    key: PublisherKey = PUBLISHER,
    manifest: dict[str, Any] | None = None,
) -> tuple[bytes, bytes]:
    """The archive of NAME at ``version`` and its statement signed by ``key``."""
    archive = service_archive(tmp_path / "releases", NAME, body, version=version, manifest=manifest)
    now = int(time.time())
    statement = key.sign(
        NAME, version, hashlib.sha256(archive).hexdigest(), len(archive), issued_at=now, expires_at=now + 3600
    )
    return archive, statement.to_bytes()


class Watch:
    """Every event of some nodes from now on; :meth:`wait` returns the first one that matches."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.seen: list[tuple[int, Event]] = []
        self._changed = trio.Event()

    async def run(self, nursery: trio.Nursery) -> None:
        for index, node in enumerate(self.nodes):
            await nursery.start(self._follow, index, node)

    async def _follow(self, index: int, node: Node, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with node.orchestrator.events.subscribe(buffer=10_000) as events:
            task_status.started()
            async for event in events:
                self.seen.append((index, event))
                self._changed.set()
                self._changed = trio.Event()

    async def wait(self, index: int, kind: str, version: str, *, within: float = 30.0) -> Event:
        with trio.fail_after(within):
            while True:
                for i, event in self.seen:
                    if i == index and event.type == kind and event.version == version:
                        return event
                await self._changed.wait()


async def versions(nodes: Any) -> list[str | None]:
    out = []
    for node in nodes:
        listed = (await node.orchestrator.list_services())["services"]
        out.append(listed[NAME]["version"] if NAME in listed else None)
    return out


async def test_followers_install_each_announced_release_without_a_command(tmp_path: Path) -> None:
    async with transfer_swarm(3, tmp_path, configure=following()) as nodes, trio.open_nursery() as nursery:
        watch = Watch(list(nodes))
        await watch.run(nursery)
        v1, s1 = release(tmp_path, "1.0.0")
        published = await nodes[0].orchestrator.publish_release(v1, s1)
        assert set(published["announced"]) == {nodes[1].peer_id, nodes[2].peer_id}
        # accepted, or known already: a follower may have asked node 0 between its install and this
        assert {answer["reason"] for answer in published["announced"].values()} <= {"accepted", "known"}
        for index in (1, 2):  # the first release: they had none
            event = await watch.wait(index, "update_installed", "1.0.0")
            assert event.data["previous_version"] is None
        v2, s2 = release(tmp_path, "2.0.0")
        await nodes[0].orchestrator.publish_release(v2, s2)
        for index in (1, 2):
            await watch.wait(index, "update_installed", "2.0.0")
            assert nodes[index].orchestrator.is_running(NAME)
        assert await versions(nodes) == ["2.0.0"] * 3
        report = await nodes[1].orchestrator.get_updates()
        entry = report["services"][NAME]
        assert entry["current_version"] == entry["newest_version"] == "2.0.0"
        assert entry["publisher"] == PUBLISHER.public_text
        assert entry["last_attempt"]["version"] == "2.0.0"
        assert entry["last_attempt"]["outcome"] in ("on_trial", "succeeded")
        assert entry["failed_versions"] == []
        nursery.cancel_scope.cancel()


async def test_a_node_that_hears_no_announcement_learns_of_a_release_every_check_interval(
    tmp_path: Path,
) -> None:
    def roles(i: int, j: int) -> str | None:
        return "reader" if i == 0 else None  # node 1 may read on node 0; node 0 may not announce to 1

    async with (
        transfer_swarm(2, tmp_path, configure=following(check_interval=0.2), roles=roles) as nodes,
        trio.open_nursery() as nursery,
    ):
        watch = Watch(list(nodes))
        await watch.run(nursery)
        published = await nodes[0].orchestrator.publish_release(*release(tmp_path, "1.0.0"))
        assert "permission_denied" in published["announced"][nodes[1].peer_id]["error"]
        event = await watch.wait(1, "update_installed", "1.0.0")
        assert event.data["from_peer"] == nodes[0].peer_id
        nursery.cancel_scope.cancel()


async def test_a_release_spreads_past_the_publishers_neighbours_served_by_a_follower(tmp_path: Path) -> None:
    async with (
        transfer_swarm(3, tmp_path, configure=following(), connect=False) as nodes,
        trio.open_nursery() as nursery,
    ):
        watch = Watch(list(nodes))
        await watch.run(nursery)
        await nodes[1].connect(nodes[0].listen_addrs[0])  # a line: 0 - 1 - 2
        await nodes[2].connect(nodes[1].listen_addrs[0])
        published = await nodes[0].orchestrator.publish_release(*release(tmp_path, "1.0.0"))
        assert list(published["announced"]) == [nodes[1].peer_id]
        first = await watch.wait(1, "update_installed", "1.0.0")
        assert first.data["from_peer"] == nodes[0].peer_id
        second = await watch.wait(2, "update_installed", "1.0.0")  # told and served by node 1
        assert second.data["from_peer"] == nodes[1].peer_id
        assert (await nodes[2].orchestrator.get_updates())["services"][NAME]["from_peer"] == nodes[1].peer_id
        nursery.cancel_scope.cancel()


async def test_an_update_that_runs_through_its_revert_window_succeeds(tmp_path: Path) -> None:
    def short_window(config: OrchestratorConfig) -> OrchestratorConfig:
        config = following()(config)
        return dataclasses.replace(config, services={NAME: ServiceSettings(revert_window=0.3)})

    async with transfer_swarm(2, tmp_path, configure=short_window) as nodes, trio.open_nursery() as nursery:
        watch = Watch(list(nodes))
        await watch.run(nursery)
        await nodes[0].orchestrator.publish_release(*release(tmp_path, "1.0.0"))
        await watch.wait(1, "update_installed", "1.0.0")
        await nodes[0].orchestrator.publish_release(*release(tmp_path, "2.0.0"))
        await watch.wait(1, "update_installed", "2.0.0")
        assert (await nodes[1].orchestrator.get_updates())["services"][NAME]["last_attempt"]["outcome"] in (
            "on_trial",
            "succeeded",
        )
        succeeded = await watch.wait(1, "update_succeeded", "2.0.0")
        assert succeeded.data["from_peer"] == nodes[0].peer_id
        entry = (await nodes[1].orchestrator.get_updates())["services"][NAME]
        assert entry["last_attempt"]["outcome"] == "succeeded" and entry["current_version"] == "2.0.0"
        nursery.cancel_scope.cancel()


async def test_a_node_that_was_not_connected_catches_up_when_it_connects(tmp_path: Path) -> None:
    async with (
        transfer_swarm(2, tmp_path, configure=following(), connect=False) as nodes,
        trio.open_nursery() as nursery,
    ):
        watch = Watch(list(nodes))
        await watch.run(nursery)
        archive, statement = release(tmp_path, "1.0.0")
        published = await nodes[0].orchestrator.publish_release(archive, statement)
        assert published["announced"] == {}  # nobody to tell
        assert await nodes[0].orchestrator.list_releases() == {
            "releases": {NAME: statement},
            "truncated": False,
        }
        await nodes[1].connect(nodes[0].listen_addrs[0])
        event = await watch.wait(1, "update_installed", "1.0.0")
        assert event.data["from_peer"] == nodes[0].peer_id
        assert await versions(nodes) == ["1.0.0", "1.0.0"]
        assert (await nodes[1].orchestrator.get_updates())["last_check"] is not None
        nursery.cancel_scope.cancel()


async def test_an_update_that_fails_to_start_is_reverted_never_retried_and_a_newer_one_installs(
    tmp_path: Path,
) -> None:
    async with transfer_swarm(3, tmp_path, configure=following()) as nodes, trio.open_nursery() as nursery:
        watch = Watch(list(nodes))
        await watch.run(nursery)
        publisher, followers = nodes[0].orchestrator, [node.orchestrator for node in nodes[1:]]
        await publisher.publish_release(*release(tmp_path, "1.0.0"))
        for index in (1, 2):
            await watch.wait(index, "update_installed", "1.0.0")
        for follower in followers:
            (follower.data_directory(NAME) / "refuse_to_start").write_text("")
        bad, bad_statement = release(tmp_path, "2.0.0", REFUSES_HERE)
        await publisher.publish_release(bad, bad_statement)  # installed there: no marker, no start
        for index, follower in enumerate(followers, start=1):  # reverted everywhere
            failed = await watch.wait(index, "update_failed", "2.0.0")
            assert "this node refuses this version" in failed.data["reason"]
            assert failed.data["from_peer"] == nodes[0].peer_id
            info = await follower.get_service_info(NAME)
            assert info["version"] == "1.0.0" and follower.is_running(NAME)
            entry = (await follower.get_updates())["services"][NAME]
            assert entry["failed_versions"] == ["2.0.0"]
            assert entry["last_attempt"]["outcome"] == "failed"
            # announced again, or listed by a poll: never tried again, and said so
            answer = await nodes[0].call_remote(
                nodes[index].peer_id,
                "orchestrator/announce_release",
                {"release": bad_statement, "deliver": True},
            )
            assert answer == {"accepted": False, "reason": "known", "delivery": False}
            # the failure is kept across restarts
            saved = json.loads((follower.home / "updates.json").read_text())
            assert "2.0.0" in saved["services"][NAME]["failed"]
        good, good_statement = release(tmp_path, "3.0.0")
        await publisher.publish_release(good, good_statement)
        for index in (1, 2):
            await watch.wait(index, "update_installed", "3.0.0")
        assert await versions(nodes) == ["3.0.0"] * 3
        assert not [e for _, e in watch.seen if e.type == "update_installed" and e.version == "2.0.0"]
        nursery.cancel_scope.cancel()


async def test_an_update_that_fails_its_health_checks_within_the_window_is_reverted_and_reported(
    tmp_path: Path,
) -> None:
    async with transfer_swarm(2, tmp_path, configure=following()) as nodes, trio.open_nursery() as nursery:
        watch = Watch(list(nodes))
        await watch.run(nursery)
        publisher, follower = nodes[0].orchestrator, nodes[1].orchestrator
        await publisher.publish_release(*release(tmp_path, "1.0.0"))
        await watch.wait(1, "update_installed", "1.0.0")
        (follower.data_directory(NAME) / "sick").write_text("")
        await publisher.publish_release(*release(tmp_path, "2.0.0", SICK_HERE, manifest={"health": HEALTH}))
        installed = await watch.wait(1, "update_installed", "2.0.0")  # it started: its trial began
        assert installed.data["previous_version"] == "1.0.0"
        failed = await watch.wait(1, "update_failed", "2.0.0")
        assert "health check failed" in failed.data["reason"]
        assert (await follower.get_service_info(NAME))["version"] == "1.0.0"
        entry = (await follower.get_updates())["services"][NAME]
        assert entry["failed_versions"] == ["2.0.0"] and entry["last_attempt"]["outcome"] == "failed"
        nursery.cancel_scope.cancel()


async def test_a_failed_version_is_not_tried_again_after_a_restart(tmp_path: Path) -> None:
    config = following()(fast_config())
    home = tmp_path / "home"
    async with Orchestrator(home, config=config) as orch:
        (orch.home / "updates.json").write_text(
            json.dumps({"services": {NAME: {"failed": {"2.0.0": "did not start"}, "last_attempt": None}}})
        )
    async with Orchestrator(home, config=config) as orch:
        _, statement = release(tmp_path, "2.0.0")
        assert await orch.announce_release(statement) == {
            "accepted": False,
            "reason": "failed_before",
            "delivery": False,
        }
        _, newer = release(tmp_path, "3.0.0")
        assert await orch.announce_release(newer) == {
            "accepted": True,
            "reason": "accepted",
            "delivery": False,
        }
        assert (await orch.get_updates())["services"][NAME]["failed_versions"] == ["2.0.0"]


async def test_outside_the_window_an_update_waits_until_it_opens(tmp_path: Path) -> None:
    now = datetime.datetime.now()
    later = ((now + datetime.timedelta(hours=2)).time(), (now + datetime.timedelta(hours=3)).time())
    window = (later[0].replace(second=0, microsecond=0), later[1].replace(second=0, microsecond=0))
    async with (
        transfer_swarm(2, tmp_path, configure=following(window=window)) as nodes,
        trio.open_nursery() as nursery,
    ):
        watch = Watch(list(nodes))
        await watch.run(nursery)
        await nodes[0].orchestrator.publish_release(*release(tmp_path, "1.0.0"))
        # both wait: the publisher follows too, but has it; the follower waits for its window
        await watch.wait(1, "update_waiting", "1.0.0")
        assert await versions(nodes) == ["1.0.0", None]
        report = await nodes[1].orchestrator.get_updates()
        assert report["in_window"] is False and report["window"] == f"{window[0]:%H:%M}-{window[1]:%H:%M}"
        assert report["services"][NAME]["newest_version"] == "1.0.0"
        assert report["services"][NAME]["last_attempt"] is None
        nodes[1].orchestrator._open.updates._local_time = lambda: window[0]  # the window opens
        nodes[1].orchestrator._open.updates._wake.set()  # (the loop wakes itself then: _seconds_until)
        await watch.wait(1, "update_installed", "1.0.0")
        assert await versions(nodes) == ["1.0.0", "1.0.0"]
        nursery.cancel_scope.cancel()


async def test_a_statement_that_expired_while_waiting_is_forgotten_not_held_against_the_version(
    tmp_path: Path,
) -> None:
    now = datetime.datetime.now()
    window = ((now + datetime.timedelta(hours=2)).time(), (now + datetime.timedelta(hours=3)).time())
    window = (window[0].replace(second=0, microsecond=0), window[1].replace(second=0, microsecond=0))
    async with (
        transfer_swarm(2, tmp_path, configure=following(window=window)) as nodes,
        trio.open_nursery() as nursery,
    ):
        watch = Watch(list(nodes))
        await watch.run(nursery)
        await nodes[0].orchestrator.publish_release(*release(tmp_path, "1.0.0"))
        await watch.wait(1, "update_waiting", "1.0.0")
        follower = nodes[
            1
        ].orchestrator._open  # the follower's clocks: the window opens, the statement expired
        follower.releases._clock = lambda: time.time() + 7200
        follower.updates._local_time = lambda: window[0]
        follower.updates._wake.set()
        refused = await watch.wait(1, "update_refused", "1.0.0")
        assert "release_expired" in refused.data["reason"]
        entry = (await nodes[1].orchestrator.get_updates())["services"][NAME]
        assert entry["newest_version"] is None and entry["failed_versions"] == []
        assert entry["last_attempt"]["outcome"] == "refused"
        assert await versions([nodes[1]]) == [None]
        nursery.cancel_scope.cancel()


async def test_untrusted_and_malformed_announcements_never_act(tmp_path: Path) -> None:
    async with transfer_swarm(2, tmp_path, configure=following()) as nodes:
        sender, follower = nodes
        _, stranger = release(tmp_path, "1.0.0", key=STRANGER)
        with pytest.raises(ReleaseError) as refused:
            await sender.call_remote(follower.peer_id, "orchestrator/announce_release", {"release": stranger})
        assert refused.value.code == "unknown_publisher"
        with pytest.raises(ReleaseError) as refused:
            await sender.call_remote(follower.peer_id, "orchestrator/announce_release", {"release": b"junk"})
        assert refused.value.code == "bad_release"
        _, statement = release(tmp_path, "1.0.0")
        forged = dataclasses.replace(ReleaseStatement.from_bytes(statement), version="9.0.0").to_bytes()
        with pytest.raises(ReleaseError) as refused:
            await sender.call_remote(follower.peer_id, "orchestrator/announce_release", {"release": forged})
        assert refused.value.code == "bad_signature"
        report = (await follower.orchestrator.get_updates())["services"][NAME]
        assert report["newest_version"] is None and report["holders"] == 0
        assert await versions([follower]) == [None]


async def test_peers_without_a_role_may_not_announce(tmp_path: Path) -> None:
    async with transfer_swarm(2, tmp_path, configure=following(), roles=None) as nodes:
        _, statement = release(tmp_path, "1.0.0")
        with pytest.raises(PermissionDenied):
            await nodes[0].call_remote(
                nodes[1].peer_id, "orchestrator/announce_release", {"release": statement}
            )


async def test_a_flood_of_announcements_from_one_peer_is_rate_limited_and_keeps_one_release(
    tmp_path: Path,
) -> None:
    async with transfer_swarm(2, tmp_path, configure=following()) as nodes:
        flooder, target = nodes
        statements = [release(tmp_path, f"1.0.{i}")[1] for i in range(40)]
        outcomes: list[str] = []

        async def announce(statement: bytes) -> None:
            try:
                answer = await flooder.call_remote(
                    target.peer_id, "orchestrator/announce_release", {"release": statement}
                )
                outcomes.append(answer["reason"])
            except Busy as exc:
                outcomes.append(exc.code)

        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for statement in statements:
                nursery.start_soon(announce, statement)
        refilled = (trio.current_time() - started) * ANNOUNCE_RATE  # tokens that came back meanwhile
        assert len(outcomes) == len(statements)
        assert len(outcomes) - outcomes.count("rate_limited") <= ANNOUNCE_BURST + refilled + 1
        report = await target.orchestrator.get_updates()
        assert report["announcements_refused"] == outcomes.count("rate_limited")
        entry = report["services"][NAME]
        assert entry["holders"] <= 1  # one release kept, with the one peer that holds it


def test_the_rate_limit_table_is_bounded_and_refills() -> None:
    now = [0.0]
    limit = PeerRateLimit(rate=1.0, burst=3, max_peers=MAX_RATE_PEERS, clock=lambda: now[0])
    assert [limit.take("a") for _ in range(4)] == [True, True, True, False]
    now[0] += 1.0
    assert limit.take("a") and not limit.take("a")
    for i in range(MAX_RATE_PEERS * 3):
        limit.take(f"peer{i}")
    assert len(limit) == MAX_RATE_PEERS
    assert limit.refused == 2


async def test_list_releases_holds_only_signed_current_versions(tmp_path: Path) -> None:
    config = following()(fast_config())
    async with Orchestrator(tmp_path / "home", config=config) as orch:
        assert await orch.list_releases() == {"releases": {}, "truncated": False}
        unsigned = service_archive(tmp_path / "other", "other_service", GOOD)
        await orch.install_service(unsigned)
        archive, statement = release(tmp_path, "1.0.0")
        await orch.install_service(archive, release=statement)
        assert await orch.list_releases() == {"releases": {NAME: statement}, "truncated": False}
        assert await orch.list_releases(["other_service"]) == {"releases": {}, "truncated": False}
        reader = Caller(peer_id="12D3KooWPeer", permissions=frozenset({Permission.READ}), public_only=True)
        listed = await orch.rpc.call("orchestrator/list_releases", {}, caller=reader)
        assert listed == {"releases": {NAME: statement}, "truncated": False}


def test_a_waiting_update_looks_again_when_its_window_opens() -> None:
    from p2p_orchestrator.orchestrator.updates import _seconds_until

    assert _seconds_until(datetime.time(1, 0), datetime.time(2, 30)) == 5400
    assert _seconds_until(datetime.time(23, 0), datetime.time(1, 0)) == 7200
    assert _seconds_until(datetime.time(2, 0), datetime.time(2, 0)) == 24 * 3600


async def test_list_releases_sends_at_most_a_reply_of_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2p_orchestrator.orchestrator import updates

    async with Orchestrator(tmp_path / "home", config=following()(fast_config())) as orch:
        archive, statement = release(tmp_path, "1.0.0")
        await orch.install_service(archive, release=statement)
        monkeypatch.setattr(updates, "REPLY_BYTES", len(statement))  # the name does not fit with it
        assert await orch.list_releases() == {"releases": {}, "truncated": True}


async def test_a_service_announces_on_a_budget_of_its_own_and_the_operator_on_none(tmp_path: Path) -> None:
    async with Orchestrator(tmp_path / "home", config=following()(fast_config())) as orch:
        _, statement = release(tmp_path, "1.0.0")
        service = Caller(
            peer_id=None, permissions=frozenset({Permission.READ}), public_only=True, service="x"
        )
        reasons = []
        for _ in range(ANNOUNCE_BURST + 1):
            try:
                answer = await orch.rpc.call(
                    "orchestrator/announce_release", {"release": statement}, caller=service
                )
                reasons.append(answer["reason"])
            except Busy as exc:
                reasons.append(exc.code)
        assert reasons == ["accepted"] + ["known"] * (ANNOUNCE_BURST - 1) + ["rate_limited"]
        for _ in range(ANNOUNCE_BURST * 2):  # this node's operator is not limited
            assert (await orch.announce_release(statement))["reason"] == "known"
        entry = (await orch.get_updates())["services"][NAME]
        assert (
            entry["newest_version"] == "1.0.0" and entry["holders"] == 0
        )  # a service is nobody to fetch from
