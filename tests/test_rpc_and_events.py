"""The local RPC entry point and the event bus."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Caller, Orchestrator, Permission, PermissionDenied, ServiceCallError
from tests.helpers import make_archive


async def test_rpc_routes_orchestrator_methods(orch: Orchestrator, tmp_path: Path) -> None:
    result = await orch.rpc.call("orchestrator/install_service", {"archive_data": make_archive(tmp_path)})
    assert result["service_name"] == "example_service"
    listing = await orch.rpc.call("orchestrator/list_services", {})
    assert listing["total_installed"] == 1
    info = await orch.rpc.call("orchestrator/get_service_info", {"service_name": "example_service"})
    assert info["name"] == "example_service"
    exported = await orch.rpc.call("orchestrator/export_service", {"service_name": "example_service"})
    assert isinstance(exported, bytes)


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("orchestrator/no_such_method", {}, "unknown orchestrator method"),
        ("orchestrator/get_service_info", {}, "missing parameter 'service_name'"),
        ("orchestrator/get_service_info", {"service_name": 3}, "must be str"),
        ("orchestrator/install_service", {"archive_data": "text"}, "must be bytes"),
        ("orchestrator/install_service", {"archive_data": b"", "force_reinstall": 1}, "must be bool"),
        ("orchestrator/list_services", {"extra": 1}, "unknown parameter"),
        ("not a path", {}, "bad method path"),
        ("../etc/passwd", {}, "bad method path"),
        ("example_service/greet", {}, "not running"),
    ],
)
async def test_rpc_refuses_bad_calls_clearly(
    orch: Orchestrator, method: str, params: dict, message: str
) -> None:
    with pytest.raises(ServiceCallError, match=message):
        await orch.rpc.call(method, params)


async def test_rpc_enforces_the_callers_permissions(orch: Orchestrator, tmp_path: Path) -> None:
    reader = Caller(peer_id="12D3KooWreader", permissions=frozenset({Permission.READ}), public_only=True)
    with pytest.raises(PermissionDenied, match="deploy"):
        await orch.rpc.call(
            "orchestrator/install_service", {"archive_data": make_archive(tmp_path)}, caller=reader
        )
    assert (await orch.list_services())["total_installed"] == 0
    assert (await orch.rpc.call("orchestrator/list_services", {}, caller=reader))["total_installed"] == 0


async def test_events_reach_subscribers(orch: Orchestrator, tmp_path: Path) -> None:
    async with orch.events.subscribe() as events:
        await orch.install_service(make_archive(tmp_path))
        await orch.uninstall_service("example_service")
        with trio.fail_after(5):
            received = [await events.receive() for _ in range(4)]
    installed = received[0]
    assert (installed.type, installed.service, installed.version) == (
        "service_installed",
        "example_service",
        "1.0.0",
    )
    order = ["service_installed", "service_started", "service_stopped", "service_uninstalled"]
    assert [e.type for e in received] == order
    assert [e.type for e in orch.events.recent()] == order


async def test_a_slow_subscriber_loses_events_but_never_blocks_publishers(orch: Orchestrator) -> None:
    async with orch.events.subscribe(buffer=2) as events:
        for _ in range(5):
            orch.events.publish("service_started", "x", "1.0.0")
        assert events.dropped == 3
