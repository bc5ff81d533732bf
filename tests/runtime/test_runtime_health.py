"""Health checks: failing checks restart a service, a blocked event loop is caught, floods starve nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Orchestrator, ServiceCallError, ServiceSettings
from p2p_orchestrator.runtime.health import HealthPolicy
from tests.runtime.support import (
    fast_config,
    moves,
    pid_of,
    recent,
    service_archive,
    wait_for_health,
    wait_for_moves,
)

FAST_HEALTH = {"interval": 0.1, "timeout": 1.0, "failures": 3}

MOODY = """
class Run(BaseService):
    async def initialize(self):
        self.mood = "fine"

    async def health_check(self):
        if self.mood == "raise":
            raise RuntimeError("feeling sick")
        if self.mood == "dict":
            return {"healthy": False, "error": "disk full", "free": 0}
        if self.mood == "false":
            return False
        return {"healthy": True, "mood": self.mood}

    @service_method()
    async def set_mood(self, mood: str):
        self.mood = mood
"""


@pytest.mark.parametrize(
    ("mood", "error"),
    [("raise", "health_check() raised RuntimeError: feeling sick"), ("dict", "disk full")],
)
async def test_a_service_failing_its_health_check_k_times_is_restarted(
    rt: Orchestrator, tmp_path: Path, mood: str, error: str
) -> None:
    await rt.install_service(service_archive(tmp_path, "moody", MOODY, manifest={"health": FAST_HEALTH}))
    await rt.start_service("moody")
    await wait_for_health(rt, "moody", "healthy")
    entry = (await rt.list_services())["services"]["moody"]
    assert entry["health"]["status"] == "healthy" and entry["health"]["consecutive_failures"] == 0
    assert entry["health"]["last_check"] is not None and entry["health"]["last_error"] is None
    assert (await rt.get_service_info("moody"))["health"]["detail"] == {"healthy": True, "mood": "fine"}
    pid = pid_of(rt, "moody")

    await rt.rpc.call("moody/set_mood", {"mood": mood})
    await wait_for_moves(rt, "moody", "running", 2)
    info = await rt.get_service_info("moody")
    assert info["restart_count"] == 1 and info["pid"] != pid
    assert info["last_error"] == f"health check failed 3 time(s) in a row: {error}"
    assert info["health_policy"] == {"interval": 0.1, "timeout": 1.0, "failures": 3, "start_period": 0.0}
    assert moves(rt, "moody")[1:] == [
        ("starting", "running"),
        ("running", "backoff"),
        ("backoff", "starting"),
        ("starting", "running"),
    ]
    health = recent(rt, "service_health", "moody")
    assert [(e.data["previous"], e.data["status"]) for e in health] == [("healthy", "unhealthy")]
    assert health[0].data["error"] == error and health[0].data["consecutive_failures"] == 1
    await wait_for_health(rt, "moody", "healthy")  # the new process is healthy again
    assert (await rt.get_service_info("moody"))["health"]["last_error"] == error  # kept for the record


async def test_an_unhealthy_service_that_recovers_is_not_restarted(home: Path, tmp_path: Path) -> None:
    health = {"moody": ServiceSettings(health={"failures": 1000})}  # the operator's settings win
    async with Orchestrator(home, config=fast_config(health)) as orch:
        archive = service_archive(tmp_path, "moody", MOODY, manifest={"health": FAST_HEALTH})
        await orch.install_service(archive)
        await orch.start_service("moody")
        await orch.rpc.call("moody/set_mood", {"mood": "false"})
        await wait_for_health(orch, "moody", "unhealthy")
        await orch.rpc.call("moody/set_mood", {"mood": "fine"})
        await wait_for_health(orch, "moody", "healthy")
        events = recent(orch, "service_health", "moody")
        assert [e.data["status"] for e in events] == ["unhealthy", "healthy"]
        assert "returned False" in events[0].data["error"]
        assert (await orch.get_service_info("moody"))["restart_count"] == 0


HANGS = """
class Run(BaseService):
    @service_method()
    async def sleep_blocking(self):
        time.sleep(1000)

    @service_method()
    async def spin(self):
        while True:
            pass
"""


@pytest.mark.parametrize("method", ["sleep_blocking", "spin"])
async def test_a_service_that_blocks_its_event_loop_is_detected_and_restarted(
    rt: Orchestrator, tmp_path: Path, method: str
) -> None:
    health = {"interval": 0.2, "timeout": 0.5, "failures": 2}
    await rt.install_service(service_archive(tmp_path, "hangs", HANGS, manifest={"health": health}))
    await rt.start_service("hangs")
    await wait_for_health(rt, "hangs", "healthy")
    pid = pid_of(rt, "hangs")
    with trio.fail_after(10), pytest.raises(ServiceCallError) as raised:
        await rt.rpc.call(f"hangs/{method}", {})  # answered only when the supervisor kills the process
    assert raised.value.code == "service_exited"
    await wait_for_moves(rt, "hangs", "running", 2)
    info = await rt.get_service_info("hangs")
    assert info["pid"] != pid and info["restart_count"] == 1
    assert info["last_error"] == (
        "health check failed 2 time(s) in a row: health check did not answer within 0.5 s "
        "(is the service's event loop blocked?)"
    )
    log = "\n".join(await rt.service_logs("hangs", 200))
    assert f"in {method}" in log  # the stacks, written before the kill, show where it hung


FLOODED = """
class Run(BaseService):
    @service_method()
    async def work(self):
        for _ in range(3):  # 3 steps of 2 ms of CPU each
            began = time.perf_counter()
            while time.perf_counter() - began < 0.002:
                pass
            await anyio.sleep(0)
        return 1
"""


async def test_health_probes_are_not_starved_by_a_flood_of_calls(home: Path, tmp_path: Path) -> None:
    # 400 calls * 2 ms per step: if all ran at once, each scheduling round of the service
    # would take 0.8 s and the probes (timeout 1 s) would fail; admitted 4 at a time, a
    # round takes 8 ms and the probes, which need no slot, keep passing.
    async with Orchestrator(home, config=fast_config(max_concurrent_calls=4)) as orch:
        health = {"interval": 0.1, "timeout": 1.0, "failures": 2}
        await orch.install_service(service_archive(tmp_path, "busy", FLOODED, manifest={"health": health}))
        await orch.start_service("busy")
        await wait_for_health(orch, "busy", "healthy")
        results: list[int] = []
        checks_before = orch.supervisor.unit("busy").health.last_check

        async def call() -> None:
            results.append(await orch.rpc.call("busy/work", {}))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(400):
                    nursery.start_soon(call)
        assert results == [1] * 400
        info = await orch.get_service_info("busy")
        assert info["restart_count"] == 0 and info["health"]["status"] == "healthy"
        assert info["health"]["last_check"] != checks_before
        assert recent(orch, "service_health", "busy") == []


def test_health_policies_overlay_and_refuse_bad_values() -> None:
    policy = HealthPolicy.from_layers({"interval": 5, "failures": 2}, {"failures": 4, "start_period": 1})
    assert (policy.interval, policy.timeout, policy.failures, policy.start_period) == (5.0, 5.0, 4, 1.0)
    for layer, message in [
        ({"failures": 0}, "failures must be a whole number >= 1"),
        ({"interval": 0}, "interval must be positive"),
        ({"timeout": "1"}, "timeout must be a number"),
        ({"every": 1}, "unknown key 'every'"),
    ]:
        with pytest.raises(ValueError, match=message):
            HealthPolicy.from_layers(layer)


async def test_failures_within_the_start_period_do_not_count(rt: Orchestrator, tmp_path: Path) -> None:
    body = """
    class Run(BaseService):
        async def initialize(self):
            self.began = time.monotonic()

        async def health_check(self):
            return time.monotonic() - self.began > 0.6  # warms up for 0.6 s
    """
    health = {"interval": 0.1, "timeout": 1.0, "failures": 2, "start_period": 5}
    await rt.install_service(service_archive(tmp_path, "warmup", body, manifest={"health": health}))
    await rt.start_service("warmup")
    await wait_for_health(rt, "warmup", "healthy")
    info = await rt.get_service_info("warmup")
    assert info["restart_count"] == 0 and "returned False" in info["health"]["last_error"]
    assert recent(rt, "service_health", "warmup") == []  # unknown -> healthy is the normal start
