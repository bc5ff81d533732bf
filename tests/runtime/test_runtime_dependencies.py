"""Dependencies: start order, waiting for health, refusals, forced stops, and restore after a restart."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2p_orchestrator import Orchestrator, ServiceInstallationError, ServiceManagementError
from p2p_orchestrator.runtime.dependencies import (
    dependents_in_stop_order,
    graph_of,
    start_order,
    stop_layers,
)
from tests.runtime.support import fast_config, recent, service_archive

PLAIN = "class Run(BaseService):\n    pass\n"

SLOW_TO_BE_HEALTHY = """
class Run(BaseService):
    async def initialize(self):
        self.probes = 0

    async def health_check(self):
        self.probes += 1
        return self.probes > 2  # unhealthy for its first two probes
"""
FAST_HEALTH = {"interval": 0.05, "timeout": 2.0, "failures": 10}


async def install(orch: Orchestrator, root: Path, name: str, needs: list[str], **kwargs: Any) -> None:
    body = kwargs.pop("body", PLAIN)
    manifest = {"dependencies": needs, "health": FAST_HEALTH, **kwargs.pop("manifest", {})}
    await orch.install_service(service_archive(root, name, body, manifest=manifest, **kwargs))


async def install_chain(orch: Orchestrator, root: Path) -> None:
    """a needs b needs c (c in a range); c is unhealthy for its first probes."""
    await install(orch, root, "a", ["b"])
    await install(orch, root, "b", ["c>=1.0,<2"])
    await install(orch, root, "c", [], body=SLOW_TO_BE_HEALTHY)


def order_of(orch: Orchestrator, kind: str) -> list[str | None]:
    return [e.service for e in recent(orch, kind)]


async def test_starting_a_service_starts_what_it_needs_first_once_healthy_and_again_after_a_restart(
    home: Path, tmp_path: Path
) -> None:
    async with Orchestrator(home, config=fast_config()) as orch:
        await install_chain(orch, tmp_path)
        result = await orch.start_service("a")
        assert result["message"] == "Service a loaded and started"
        assert all(orch.is_running(n) for n in "abc")
        kinds = [
            (e.type, e.service, e.data.get("status"))
            for e in orch.events.recent()
            if e.type in ("service_started", "service_health")
        ]
        assert kinds == [
            ("service_started", "c", None),
            ("service_health", "c", "unhealthy"),
            ("service_health", "c", "healthy"),  # b starts only once c is healthy
            ("service_started", "b", None),
            ("service_started", "a", None),
        ]
        listing = (await orch.list_services())["services"]
        assert {n: listing[n]["desired_state"] for n in "abc"} == dict.fromkeys("abc", "running")
    assert order_of(orch, "service_stopped") == ["a", "b", "c"]  # closing stops dependents first
    async with Orchestrator(home, config=fast_config()) as orch:  # desired state comes back in order
        assert order_of(orch, "service_started") == ["c", "b", "a"]
        assert all(orch.is_running(n) for n in "abc")


async def test_missing_dependencies_bad_versions_and_cycles_are_refused_before_anything_starts(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await install(rt, tmp_path, "c", [])
    await install(rt, tmp_path, "lonely", ["c", "ghost"])
    await install(rt, tmp_path, "picky", ["c>=2"])
    await install(rt, tmp_path, "x", ["y"])
    await install(rt, tmp_path, "y", ["z"])
    await install(rt, tmp_path, "z", ["x"])
    cases = [
        ("lonely", "missing_dependency", "lonely needs service ghost, which is not installed"),
        ("picky", "dependency_version", "picky needs c>=2.0.0, but c 1.0.0 is installed"),
        ("x", "dependency_cycle", "services depend on each other in a cycle: x -> y -> z -> x"),
    ]
    for name, code, message in cases:
        with pytest.raises(ServiceManagementError) as raised:
            await rt.start_service(name)
        assert (raised.value.code, raised.value.message) == (code, message)
    assert recent(rt, "service_started") == []  # not even c
    result = await rt.install_service(
        service_archive(tmp_path, "eager", PLAIN, manifest={"dependencies": ["ghost"], "auto_start": True})
    )
    assert result["auto_started"] is False and "ghost, which is not installed" in result["auto_start_error"]


async def test_a_dependency_that_fails_to_start_fails_the_start(rt: Orchestrator, tmp_path: Path) -> None:
    await install(rt, tmp_path, "broken", [], body="raise RuntimeError('no database')\n")
    await install(rt, tmp_path, "app", ["broken"])
    with pytest.raises(ServiceManagementError) as raised:
        await rt.start_service("app")
    assert raised.value.code == "dependency_failed"
    assert raised.value.message.startswith("app needs broken, which did not start: ")
    assert "no database" in raised.value.message
    assert not rt.is_running("app")


async def test_a_dependency_that_never_becomes_healthy_fails_the_start_in_bounded_time(
    home: Path, tmp_path: Path
) -> None:
    body = "class Run(BaseService):\n    async def health_check(self):\n        return False\n"
    async with Orchestrator(home, config=fast_config(dependency_timeout=0.5)) as orch:
        await install(
            orch, tmp_path, "sick", [], body=body, manifest={"health": {**FAST_HEALTH, "failures": 1000}}
        )
        await install(orch, tmp_path, "app", ["sick"])
        with pytest.raises(ServiceManagementError) as raised:
            await orch.start_service("app")
        assert raised.value.code == "dependency_failed"
        assert "sick, which is running and unhealthy (waited up to 0.5 s" in raised.value.message
        assert "health_check() returned False" in raised.value.message


async def test_stop_and_uninstall_are_refused_while_others_need_the_service_unless_forced(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await install_chain(rt, tmp_path)
    await install(rt, tmp_path, "d", ["c"])  # a second branch, installed but stopped
    await rt.start_service("a")
    for action in ("stop_service", "uninstall_service"):
        with pytest.raises(ServiceManagementError) as raised:
            await getattr(rt, action)("c")
        assert raised.value.code == "has_dependents"
    assert "cannot stop c: running service(s) need it: a, b;" in str(await _refusal(rt.stop_service("c")))
    assert "cannot uninstall c: installed service(s) need it: b, d;" in str(
        await _refusal(rt.uninstall_service("c"))
    )
    assert all(rt.is_running(n) for n in "abc")

    await rt.stop_service("c", force=True)
    assert order_of(rt, "service_stopped") == ["a", "b", "c"]  # dependents first, each before what it needs
    listing = (await rt.list_services())["services"]
    assert {n: (listing[n]["state"], listing[n]["desired_state"]) for n in "abc"} == dict.fromkeys(
        "abc", ("stopped", "stopped")
    )
    with pytest.raises(ServiceManagementError, match="installed service"):
        await rt.uninstall_service("c")  # stopped dependents are still installed
    await rt.start_service("b")  # and c, which it needs
    await rt.uninstall_service("c", force=True)
    assert (
        order_of(rt, "service_stopped")[-2:] == ["b", "c"]
        and "c" not in (await rt.list_services())["services"]
    )
    with pytest.raises(ServiceManagementError) as raised:
        await rt.start_service("a")
    assert raised.value.code == "missing_dependency"
    await rt.stop_service("a")  # stopping a service nothing needs is never refused


async def test_an_upgrade_outside_a_running_dependents_range_is_refused_unless_forced(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await install_chain(rt, tmp_path)  # b needs c>=1.0,<2
    await install(rt, tmp_path, "e", ["c<1.5"])  # installed, never started: not protected
    await rt.start_service("a")
    await install(rt, tmp_path, "c", [], version="1.9.0")  # within b's range (e is stopped): restarted on it
    assert (await rt.get_service_info("c"))["version"] == "1.9.0"
    c_pid = (await rt.get_service_info("c"))["pid"]

    with pytest.raises(ServiceInstallationError) as raised:
        await install(rt, tmp_path, "c", [], version="2.0.0")
    assert raised.value.code == "breaks_dependents"
    assert raised.value.message == (
        "cannot install c 2.0.0: running service(s) need another version: b (needs c>=1.0.0,<2.0.0); "
        "upgrade or stop them first, or pass force_reinstall=True"
    )
    info = await rt.get_service_info("c")
    assert (info["version"], info["pid"], info["state"]) == ("1.9.0", c_pid, "running")  # nothing changed

    await rt.stop_service("a")
    await rt.stop_service("b")
    await install(rt, tmp_path, "c", [], version="2.0.0")  # nobody running needs c<2 any more
    assert (await rt.get_service_info("c"))["version"] == "2.0.0"
    with pytest.raises(ServiceManagementError) as start:
        await rt.start_service("b")
    assert start.value.code == "dependency_version"

    await rt.rollback_service("c")
    await rt.start_service("a")
    await rt.install_service(
        service_archive(tmp_path / "forced", "c", PLAIN, version="2.1.0", manifest={"health": FAST_HEALTH}),
        force_reinstall=True,
    )
    assert (await rt.get_service_info("c"))["version"] == "2.1.0"  # forced: b keeps running, out of range
    assert rt.is_running("b")


async def _refusal(call: Any) -> ServiceManagementError:
    with pytest.raises(ServiceManagementError) as raised:
        await call
    return raised.value


def test_graph_orders() -> None:
    graph = graph_of(
        [
            ("web", "1.0.0", {"dependencies": ["api", "cache"]}),
            ("api", "1.2.0", {"dependencies": ["db>=1.0"]}),
            ("cache", "1.0.0", {}),
            ("db", "1.5.0", {}),
            ("admin", "1.0.0", {"dependencies": ["db"]}),
        ]
    )
    assert start_order("web", graph) == ["db", "api", "cache", "web"]
    assert start_order("db", graph) == ["db"]
    stop = dependents_in_stop_order("db", graph)
    assert set(stop) == {"web", "api", "admin"} and stop.index("web") < stop.index("api")
    assert dependents_in_stop_order("web", graph) == []
    assert stop_layers(["db", "api", "web", "cache", "other"], graph) == [
        ["other", "web"],
        ["api", "cache"],
        ["db"],
    ]


async def test_a_start_racing_a_breaking_install_is_refused_not_run_against_it(
    rt: Orchestrator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a dependent started while the install of its dependency built its environment
    was checked against the old version, then ran against the new one, out of its range."""
    await install(rt, tmp_path, "c", [])
    await install(rt, tmp_path, "b", ["c<2"])
    building, release = trio.Event(), trio.Event()
    real_ensure = rt._open.catalog.venvs.ensure

    async def slow_ensure(name: str, requirements: Any) -> Any:
        if name == "c" and not release.is_set():
            building.set()
            await release.wait()
        return await real_ensure(name, requirements)

    monkeypatch.setattr(rt._open.catalog.venvs, "ensure", slow_ensure)
    outcome: dict[str, Any] = {}

    async def start_b() -> None:
        try:
            await rt.start_service("b")
        except ServiceManagementError as exc:
            outcome["start"] = exc.code

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(install, rt, tmp_path, "c", [], version="2.0.0"))
        await building.wait()  # c's install passed its first check and builds its environment
        nursery.start_soon(start_b)
        await trio.testing.wait_all_tasks_blocked()  # b's start checked c 1.0.0, now waits for c
        release.set()
    assert (await rt.get_service_info("c"))["version"] == "2.0.0"
    assert outcome == {"start": "dependency_version"}
    assert not rt.is_running("b")


async def test_a_rollback_outside_a_running_dependents_range_is_refused_unless_forced(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await install(rt, tmp_path, "c", [])
    await install(rt, tmp_path, "c", [], version="2.0.0")
    await install(rt, tmp_path, "b", ["c>=2"])
    await rt.start_service("b")
    with pytest.raises(ServiceManagementError) as refused:
        await rt.rollback_service("c")
    assert refused.value.code == "breaks_dependents"
    assert "cannot roll c back to 1.0.0: running service(s) need another version: b (needs c>=2.0.0)" in str(
        refused.value
    )
    assert (await rt.get_service_info("c"))["version"] == "2.0.0" and rt.is_running("b")
    rolled = await rt.rollback_service("c", force=True)
    assert rolled["to_version"] == "1.0.0"
