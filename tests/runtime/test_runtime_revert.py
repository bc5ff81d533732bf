"""Upgrade safety: a new version that fails to start, or fails within the revert window, is reverted."""

from __future__ import annotations

from pathlib import Path

import trio

from p2p_orchestrator import Orchestrator, ServiceSettings
from tests.runtime.support import (
    fast_config,
    pid_of,
    recent,
    service_archive,
    wait_for_health,
    wait_for_moves,
)

GOOD = """
VERSION = {version!r}

class Run(BaseService):
    async def initialize(self):
        self.ill = False
        {initialize}

    async def health_check(self):
        {health_check}
        return not self.ill

    @service_method()
    async def version(self):
        return VERSION

    @service_method()
    async def fall_ill(self):
        self.ill = True
"""
HEALTH = {"interval": 0.1, "timeout": 1.0, "failures": 2}


def archive(root: Path, version: str, *, initialize: str = "pass", health_check: str = "pass") -> bytes:
    body = GOOD.format(version=version, initialize=initialize, health_check=health_check)
    return service_archive(root, "svc", body, version=version, manifest={"health": HEALTH})


async def test_an_upgrade_that_does_not_start_is_reverted_before_install_returns(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await rt.install_service(archive(tmp_path, "1.0.0"))
    await rt.start_service("svc")
    result = await rt.install_service(
        archive(tmp_path, "2.0.0", initialize="raise RuntimeError('cannot open the new schema')")
    )
    assert result["success"] is True and result["auto_started"] is False and result["reverted"] is True
    assert result["revert_reason"].startswith("version 2.0.0 did not start: ")
    assert (
        "cannot open the new schema"
        in result["revert_reason"]
        == f"version 2.0.0 did not start: {result['auto_start_error']}"
    )
    assert await rt.rpc.call("svc/version", {}) == "1.0.0"
    info = await rt.get_service_info("svc")
    assert (info["version"], info["state"]) == ("1.0.0", "running")
    assert info["last_revert"]["from_version"] == "2.0.0" and info["last_revert"]["to_version"] == "1.0.0"
    assert info["last_revert"]["reason"] == result["revert_reason"] and info["last_revert"]["at"]
    [event] = recent(rt, "service_reverted")
    assert (event.version, event.data["from_version"], event.data["restarted"]) == ("1.0.0", "2.0.0", True)
    assert (await rt.get_orchestrator_status())["statistics"]["reverts"] == 1


async def test_the_last_revert_is_remembered_across_a_node_restart_and_a_later_install(
    home: Path, tmp_path: Path
) -> None:
    """Regression: ``last_revert`` was kept in memory, so an operator lost why a node reverted."""
    async with Orchestrator(home, config=fast_config()) as orch:
        await orch.install_service(archive(tmp_path, "1.0.0"))
        await orch.start_service("svc")
        await orch.install_service(archive(tmp_path, "2.0.0", initialize="raise RuntimeError('bad')"))
        revert = (await orch.get_service_info("svc"))["last_revert"]
        assert (revert["from_version"], revert["to_version"]) == ("2.0.0", "1.0.0")
    async with Orchestrator(home, config=fast_config()) as orch:
        assert (await orch.get_service_info("svc"))["last_revert"] == revert
        await orch.install_service(archive(tmp_path, "3.0.0"))  # a good upgrade keeps the history
        info = await orch.get_service_info("svc")
        assert (info["version"], info["last_revert"]) == ("3.0.0", revert)
        await orch.uninstall_service("svc")
        await orch.install_service(archive(tmp_path, "1.0.0"))  # a new service has none
        assert (await orch.get_service_info("svc"))["last_revert"] is None


async def test_an_upgrade_that_fails_its_health_checks_within_the_window_is_reverted(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await rt.install_service(archive(tmp_path, "1.0.0"))
    await rt.start_service("svc")
    async with rt.events.subscribe() as events:
        result = await rt.install_service(archive(tmp_path, "2.0.0", health_check="return False"))
        assert result["auto_started"] is True and "reverted" not in result  # it started: the trial began
        with trio.fail_after(15):
            async for event in events:
                if event.type == "service_reverted":
                    break
    assert event.data["from_version"] == "2.0.0" and event.data["to_version"] == "1.0.0"
    assert "health check failed 2 time(s) in a row: health_check() returned False" in event.data["reason"]
    await wait_for_health(rt, "svc", "healthy")
    assert await rt.rpc.call("svc/version", {}) == "1.0.0"
    info = await rt.get_service_info("svc")
    assert info["version"] == "1.0.0" and info["last_revert"]["reason"] == event.data["reason"]
    assert info["desired_state"] == "running"


async def test_a_failure_after_the_window_is_left_to_the_restart_policy(home: Path, tmp_path: Path) -> None:
    config = fast_config({"svc": ServiceSettings(revert_window=0.3)})  # the operator's window
    async with Orchestrator(home, config=config) as orch:
        await orch.install_service(archive(tmp_path, "1.0.0"))
        await orch.start_service("svc")
        await orch.install_service(archive(tmp_path, "2.0.0"))
        await wait_for_health(orch, "svc", "healthy")
        await trio.sleep(0.4)  # the trial lasts 0.3 s: only time ends it
        pid = pid_of(orch, "svc")
        await orch.rpc.call("svc/fall_ill", {})
        await wait_for_moves(orch, "svc", "running", 3)  # v1, v2, and v2 again after its checks failed
        info = await orch.get_service_info("svc")
        assert (info["version"], info["last_revert"], info["restart_count"]) == ("2.0.0", None, 1)
        assert info["pid"] != pid and recent(orch, "service_reverted") == []


async def test_auto_revert_can_be_turned_off(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=fast_config(auto_revert=False)) as orch:
        await orch.install_service(archive(tmp_path, "1.0.0"))
        await orch.start_service("svc")
        result = await orch.install_service(archive(tmp_path, "2.0.0", initialize="raise ValueError('x')"))
        assert result["auto_started"] is False and "reverted" not in result
        info = await orch.get_service_info("svc")
        assert (info["version"], info["state"]) == ("2.0.0", "failed")
