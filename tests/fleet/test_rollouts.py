"""Rollouts upgrade targets in waves and count a target only once it ran healthy, on real nodes.

A coordinator pushes the release to the canaries, then wave by wave; a target that does not run
the new version healthy after ``health_wait`` is reverted; past ``max_failures`` the rollout halts
and every target it upgraded goes back to the version it had, while later waves stay untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import signal
import time
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.node import Node
from p2p_orchestrator.release import Publisher, PublisherKey
from tests.distribution.support import transfer_swarm
from tests.release.test_updates import GOOD, REFUSES_HERE, SICK_HERE
from tests.reliability.support import free_port, node_config, node_process, write_config
from tests.runtime.support import service_archive

NAME = "rolled"
UNREACHABLE = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"


def archive(tmp_path: Path, version: str, body: str = GOOD) -> bytes:
    return service_archive(
        tmp_path / "archives",
        NAME,
        body,
        version=version,
        manifest={"health": {"interval": 0.1, "timeout": 1.0, "failures": 2}},
    )


async def with_v1(tmp_path: Path, nodes: Any) -> None:
    v1 = archive(tmp_path, "1.0.0")
    for node in nodes[1:]:
        await node.orchestrator.install_service(v1)
        await node.orchestrator.start_service(NAME)


async def versions(nodes: Any) -> list[str | None]:
    out = []
    for node in nodes[1:]:
        listed = (await node.orchestrator.list_services())["services"]
        out.append(listed[NAME]["version"] if NAME in listed else None)
    return out


def states(account: dict[str, Any], nodes: Any) -> list[str]:
    return [account["targets"][node.peer_id]["state"] for node in nodes[1:]]


async def rollout(coordinator: Node, data: bytes, targets: list[str], **options: Any) -> dict[str, Any]:
    options.setdefault("health_wait", 0.5)
    with trio.fail_after(60):
        return await coordinator.orchestrator.rollout_archive(data, targets, **options)


async def test_a_good_rollout_upgrades_every_target_in_waves(tmp_path: Path) -> None:
    async with transfer_swarm(5, tmp_path) as nodes:
        await with_v1(tmp_path, nodes)
        targets = [node.peer_id for node in nodes[1:]]
        account = await rollout(nodes[0], archive(tmp_path, "2.0.0"), targets, canary=1, wave=2)
        assert account["phase"] == "succeeded", account
        assert account["waves"] == [targets[:1], targets[1:3], targets[3:]]
        assert states(account, nodes) == ["healthy"] * 4
        assert {t["previous_version"] for t in account["targets"].values()} == {"1.0.0"}
        assert await versions(nodes) == ["2.0.0"] * 4
        assert all(node.orchestrator.is_running(NAME) for node in nodes[1:])
        status = await nodes[0].orchestrator.rollout_status(account["id"])
        assert status["phase"] == "succeeded"
        assert not (nodes[0].orchestrator.home / "rollouts" / f"{account['id']}.tar.gz").exists()


async def test_a_failing_canary_halts_the_rollout_with_only_the_canary_reverted(tmp_path: Path) -> None:
    async with transfer_swarm(4, tmp_path) as nodes:
        await with_v1(tmp_path, nodes)
        for node in nodes[1:]:
            (node.orchestrator.data_directory(NAME) / "refuse_to_start").write_text("")
        targets = [node.peer_id for node in nodes[1:]]
        account = await rollout(nodes[0], archive(tmp_path, "2.0.0", REFUSES_HERE), targets, canary=1, wave=2)
        assert account["phase"] == "halted", account
        assert states(account, nodes) == ["reverted", "untouched", "untouched"]
        canary = account["targets"][targets[0]]
        assert canary["failed"] and "did not start" in canary["reason"]
        assert await versions(nodes) == ["1.0.0"] * 3
        assert all(node.orchestrator.is_running(NAME) for node in nodes[1:])


async def test_a_mid_wave_failure_reverts_that_wave_and_the_ones_before(tmp_path: Path) -> None:
    async with transfer_swarm(5, tmp_path) as nodes:
        await with_v1(tmp_path, nodes)
        (nodes[3].orchestrator.data_directory(NAME) / "sick").write_text("")  # wave 1, second target
        targets = [node.peer_id for node in nodes[1:]]
        account = await rollout(
            nodes[0], archive(tmp_path, "2.0.0", SICK_HERE), targets, canary=1, wave=2, health_wait=1.0
        )
        assert account["phase"] == "halted", account
        assert states(account, nodes) == ["reverted", "reverted", "reverted", "untouched"]
        assert [account["targets"][t]["failed"] for t in targets] == [False, False, True, False]
        assert "health" in account["targets"][targets[2]]["reason"]
        assert await versions(nodes) == ["1.0.0"] * 4
        assert account["failures"] == 1


async def test_an_unreachable_target_is_reported_and_skipped(tmp_path: Path) -> None:
    async with transfer_swarm(3, tmp_path) as nodes:
        await with_v1(tmp_path, nodes)
        targets = [nodes[1].peer_id, UNREACHABLE, nodes[2].peer_id]
        account = await rollout(nodes[0], archive(tmp_path, "2.0.0"), targets, canary=1, wave=2)
        assert account["phase"] == "succeeded", account
        assert account["targets"][UNREACHABLE]["state"] == "unreachable"
        assert not account["targets"][UNREACHABLE]["failed"]
        assert await versions(nodes) == ["2.0.0", "2.0.0"]


async def test_a_target_without_the_service_gets_it_and_loses_it_again_on_a_halt(tmp_path: Path) -> None:
    async with transfer_swarm(3, tmp_path) as nodes:
        await nodes[2].orchestrator.install_service(archive(tmp_path, "1.0.0"))
        (nodes[2].orchestrator.data_directory(NAME) / "sick").write_text("")
        targets = [nodes[1].peer_id, nodes[2].peer_id]  # node 1 has nothing: the canary
        account = await rollout(
            nodes[0], archive(tmp_path, "2.0.0", SICK_HERE), targets, canary=1, wave=1, health_wait=1.0
        )
        assert account["phase"] == "halted", account
        assert account["targets"][targets[0]]["previous_version"] is None
        assert states(account, nodes) == ["reverted", "reverted"]
        assert await versions(nodes) == [None, "1.0.0"]


async def test_a_coordinator_killed_mid_rollout_takes_it_up_again_on_restart(tmp_path: Path) -> None:
    async with transfer_swarm(3, tmp_path) as targets:
        v1 = archive(tmp_path, "1.0.0")
        for node in targets:
            await node.orchestrator.install_service(v1)
            await node.orchestrator.start_service(NAME)
        v2 = tmp_path / "rolled-2.0.0.tar.gz"
        v2.write_bytes(archive(tmp_path, "2.0.0"))
        home = tmp_path / "coordinator"
        write_config(home, node_config(port=free_port()))
        ids = [node.peer_id for node in targets]
        async with node_process(home) as coordinator:
            for node in targets:
                await node.set_role(coordinator.peer_id, "admin")
                assert (await coordinator.command("connect", address=node.listen_addrs[0]))["event"] == "done"
            async with targets[0].orchestrator.events.subscribe() as events:
                started = await coordinator.command(
                    "rollout", archive=str(v2), targets=ids, canary=1, wave=2, health_wait=2.0
                )
                assert started["event"] == "done", started
                rollout_id = started["result"]["id"]
                with trio.fail_after(30):  # the canary runs the new version: its health wait has begun
                    async for event in events:
                        if event.type == "service_started" and event.version == "2.0.0":
                            break
            coordinator.signal(signal.SIGKILL)
            await coordinator.wait_exit()
        assert (await targets[1].orchestrator.get_service_info(NAME))["version"] == "1.0.0"  # not reached yet
        async with node_process(home) as coordinator:
            done = await coordinator.command("rollout_wait", id=rollout_id, limit=90)
        assert done["event"] == "done", done
        account = done["result"]
        assert account["phase"] == "succeeded", account
        assert [account["targets"][peer]["state"] for peer in ids] == ["healthy"] * 3
        for node in targets:
            assert (await node.orchestrator.get_service_info(NAME))["version"] == "2.0.0"


async def test_an_aborted_rollout_reverts_what_it_upgraded_and_touches_nothing_more(tmp_path: Path) -> None:
    async with transfer_swarm(4, tmp_path) as nodes:
        await with_v1(tmp_path, nodes)
        targets = [node.peer_id for node in nodes[1:]]
        orchestrator = nodes[0].orchestrator
        async with orchestrator.events.subscribe() as events:
            started = await orchestrator.rollout_archive(
                archive(tmp_path, "2.0.0"), targets, canary=1, wave=2, health_wait=30.0, wait=False
            )
            with trio.fail_after(30):  # the canary is upgraded: its health wait has begun
                async for event in events:
                    if event.type == "rollout_progress" and event.data["state"] == "upgraded":
                        break
        aborting = await orchestrator.abort_rollout(started["id"])
        assert aborting["phase"] == "advancing"
        with trio.fail_after(30):
            account = await orchestrator.wait_rollout(started["id"])
        assert account["phase"] == "aborted", account
        assert states(account, nodes) == ["reverted", "untouched", "untouched"]
        assert await versions(nodes) == ["1.0.0"] * 3


async def test_a_rollout_carries_the_release_statement_to_targets_that_require_one(tmp_path: Path) -> None:
    key = PublisherKey.generate()

    def signed_only(config: OrchestratorConfig) -> OrchestratorConfig:
        return dataclasses.replace(
            config,
            publishers=(Publisher("ci", key.public_key, ("*",)),),
            security=dataclasses.replace(config.security, require_signed=True),
        )

    async with transfer_swarm(3, tmp_path, configure=signed_only) as nodes:
        targets = [node.peer_id for node in nodes[1:]]
        data = archive(tmp_path, "1.0.0")
        now = int(time.time())
        statement = key.sign(
            NAME, "1.0.0", hashlib.sha256(data).hexdigest(), len(data), issued_at=now, expires_at=now + 600
        )
        unsigned = await rollout(nodes[0], data, targets, canary=1, wave=1)
        assert unsigned["phase"] == "halted"
        assert "release_required" in unsigned["targets"][targets[0]]["reason"]
        assert states(unsigned, nodes) == ["reverted", "untouched"]
        signed = await rollout(nodes[0], data, targets, canary=1, wave=1, release=statement.to_bytes())
        assert signed["phase"] == "succeeded", signed
        assert await versions(nodes) == ["1.0.0", "1.0.0"]
