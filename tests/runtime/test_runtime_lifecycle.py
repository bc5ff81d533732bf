"""Start, stop and restart real service processes; their states, results and events."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Orchestrator, ServiceManagementError, ServiceSettings
from tests.runtime.support import (
    alive,
    fast_config,
    moves,
    pid_of,
    service_archive,
    wait_for_state,
    wait_until_gone,
)

RUNTIME_KEYS = {"state", "pid", "uptime_seconds", "restart_count", "last_exit_status", "last_error"}
SPEC_KEYS = {
    "installed",
    "running",
    "installed_at",
    "archive_hash",
    "manifest",
    "files_count",
    "directory_exists",
}


async def test_start_stop_restart_have_the_spec_shapes_and_states(rt: Orchestrator, tmp_path: Path) -> None:
    await rt.install_service(service_archive(tmp_path, "example_service"))
    listing = await rt.list_services()
    entry = listing["services"]["example_service"]
    assert entry.keys() >= SPEC_KEYS | RUNTIME_KEYS
    assert (entry["state"], entry["running"], entry["pid"]) == ("installed", False, None)

    async with rt.events.subscribe() as events:
        started = await rt.start_service("example_service")
        assert started.keys() == {"success", "service_name", "started_at", "message"}
        assert (
            started["success"] is True and started["message"] == "Service example_service loaded and started"
        )
        assert rt.is_running("example_service")
        info = await rt.get_service_info("example_service")
        assert (
            info["state"] == "running"
            and info["running"] is True
            and info["pid"] == pid_of(rt, "example_service")
        )
        assert (
            info["uptime_seconds"] >= 0 and info["restart_count"] == 0 and info["desired_state"] == "running"
        )
        assert info["methods"]["stats"]["public"] is False
        pid = info["pid"]

        again = await rt.start_service("example_service")
        assert (
            again["message"] == "Service example_service is already running"
            and pid_of(rt, "example_service") == pid
        )

        restarted = await rt.restart_service("example_service")
        assert restarted.keys() == {"success", "service_name", "restarted_at", "message"}
        assert not alive(pid) and pid_of(rt, "example_service") != pid

        stopped = await rt.stop_service("example_service")
        assert stopped.keys() == {"success", "service_name", "stopped_at", "message"}
        assert stopped["message"] == "Service example_service stopped"
        info = await rt.get_service_info("example_service")
        assert (info["state"], info["running"], info["pid"], info["last_exit_status"]) == (
            "stopped",
            False,
            None,
            0,
        )
        assert info["desired_state"] == "stopped"
        assert (await rt.stop_service("example_service"))[
            "message"
        ] == "Service example_service was not running"
        kinds = [e.type for e in events._receive._state.data]  # type: ignore[attr-defined]
    assert kinds == [
        "service_started",
        "service_stopped",
        "service_started",
        "service_restarted",
        "service_stopped",
    ]
    assert moves(rt, "example_service") == [
        ("installed", "starting"),
        ("starting", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
        ("stopped", "starting"),
        ("starting", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
    ]
    status = await rt.get_orchestrator_status()
    assert status["statistics"]["total_running"] == 0


async def test_install_auto_starts_when_the_manifest_or_operator_says_so(home: Path, tmp_path: Path) -> None:
    config = fast_config(
        {"quiet": ServiceSettings(auto_start=False), "loud": ServiceSettings(auto_start=True)}
    )
    async with Orchestrator(home, config=config) as orch:
        result = await orch.install_service(service_archive(tmp_path, "eager", manifest={"auto_start": True}))
        assert result["auto_started"] is True and orch.is_running("eager")
        result = await orch.install_service(service_archive(tmp_path, "quiet", manifest={"auto_start": True}))
        assert result["auto_started"] is False and not orch.is_running("quiet")
        result = await orch.install_service(service_archive(tmp_path, "loud"))
        assert result["auto_started"] is True and orch.is_running("loud")
        result = await orch.install_service(service_archive(tmp_path, "plain"))
        assert result["auto_started"] is False
        broken = service_archive(
            tmp_path, "broken", "raise RuntimeError('boom')\n", manifest={"auto_start": True}
        )
        result = await orch.install_service(broken)
        assert result["auto_started"] is False and "boom" in result["auto_start_error"]
        assert (await orch.get_service_info("broken"))["state"] == "failed"


VERSIONED = """
class Run(BaseService):
    @service_method(public=True)
    async def version(self):
        return {"version": VERSION, "cwd": os.getcwd()}
"""


async def test_upgrade_and_rollback_restart_a_running_service_on_the_new_version(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await rt.install_service(service_archive(tmp_path, "ver", "VERSION = 1\n" + VERSIONED))
    await rt.start_service("ver")
    old_pid = pid_of(rt, "ver")
    result = await rt.install_service(
        service_archive(tmp_path, "ver", "VERSION = 2\n" + VERSIONED, version="2.0.0")
    )
    assert result["auto_started"] is True and not alive(old_pid)
    answer = await rt.rpc.call("ver/version", {})
    assert answer["version"] == 2 and answer["cwd"] == (await rt.get_service_info("ver"))["data_directory"]
    await rt.rollback_service("ver")
    assert (await rt.rpc.call("ver/version", {}))["version"] == 1
    assert rt.is_running("ver")


async def test_a_stopped_service_is_upgraded_without_starting(rt: Orchestrator, tmp_path: Path) -> None:
    await rt.install_service(service_archive(tmp_path, "ver", "VERSION = 1\n" + VERSIONED))
    result = await rt.install_service(
        service_archive(tmp_path, "ver", "VERSION = 2\n" + VERSIONED, version="2.0.0")
    )
    assert result["auto_started"] is False and not rt.is_running("ver")


async def test_uninstall_stops_the_service_first(rt: Orchestrator, tmp_path: Path) -> None:
    await rt.install_service(service_archive(tmp_path, "example_service"))
    await rt.start_service("example_service")
    pid = pid_of(rt, "example_service")
    await rt.uninstall_service("example_service")
    assert not alive(pid)
    assert (await rt.list_services())["total_installed"] == 0
    with pytest.raises(ServiceManagementError, match="not installed"):
        await rt.start_service("example_service")


async def test_desired_state_survives_a_node_restart(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=fast_config()) as orch:
        for name in ("kept", "parked", "never"):
            await orch.install_service(service_archive(tmp_path, name))
        await orch.start_service("kept")
        await orch.start_service("parked")
        await orch.stop_service("parked")
        pid = pid_of(orch, "kept")
    assert not alive(pid)  # closing the node stops its services...
    async with Orchestrator(home, config=fast_config()) as orch:
        listing = (await orch.list_services())["services"]
        assert listing["kept"]["state"] == "running"  # ...and opening it brings back those that ran
        assert listing["parked"]["state"] == "installed" and listing["never"]["state"] == "installed"
        assert (await orch.rpc.call("kept/greet", {"name": "again"}))["message"].endswith(", again!")


async def test_the_orchestrator_kills_its_children_when_cancelled(home: Path, tmp_path: Path) -> None:
    pids = []
    with trio.move_on_after(30) as scope:
        async with Orchestrator(home, config=fast_config()) as orch:
            await orch.install_service(service_archive(tmp_path, "example_service"))
            await orch.start_service("example_service")
            pids.append(pid_of(orch, "example_service"))
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught and pids
    assert not alive(pids[0])


SLOW_CLEANUP = """
class Run(BaseService):
    async def cleanup(self):
        {cleanup}

    @service_method()
    async def ping(self):
        return "pong"
"""


@pytest.mark.parametrize(
    ("cleanup", "status"),
    [
        ("time.sleep(60)  # blocks the event loop: only a signal ends it", -signal.SIGTERM),
        ("await anyio.sleep_forever()  # the runner's own bound ends it", 0),
    ],
)
async def test_a_hanging_cleanup_is_ended_after_the_grace_period(
    home: Path, tmp_path: Path, cleanup: str, status: int
) -> None:
    async with Orchestrator(home, config=fast_config(stop_timeout=1.0)) as orch:
        await orch.install_service(service_archive(tmp_path, "sticky", SLOW_CLEANUP.format(cleanup=cleanup)))
        await orch.start_service("sticky")
        pid = pid_of(orch, "sticky")
        with trio.fail_after(8):
            await orch.stop_service("sticky")
        info = await orch.get_service_info("sticky")
        assert (info["state"], info["last_exit_status"]) == ("stopped", status)
        await wait_until_gone(pid)


async def test_stop_while_starting_kills_the_process(rt: Orchestrator, tmp_path: Path) -> None:
    body = """
    class Run(BaseService):
        async def initialize(self):
            await anyio.sleep(60)
    """
    await rt.install_service(service_archive(tmp_path, "slow", body))
    async with trio.open_nursery() as nursery:
        errors: list[ServiceManagementError] = []

        async def start() -> None:
            try:
                await rt.supervisor.start("slow")
            except ServiceManagementError as exc:
                errors.append(exc)

        nursery.start_soon(start)
        await wait_for_state(rt, "slow", "starting")
        await rt.supervisor.stop("slow")
    assert errors and errors[0].code == "start_cancelled"
    assert moves(rt, "slow")[-3:] == [
        ("installed", "starting"),
        ("starting", "stopping"),
        ("stopping", "stopped"),
    ]
