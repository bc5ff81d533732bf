"""Services that break: each ends in a clear error or state, in bounded time, and the node carries on."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Orchestrator, ServiceCallError, ServiceManagementError, ServiceSettings
from tests.runtime.support import (
    alive,
    fast_config,
    moves,
    pid_of,
    service_archive,
    transitions,
    wait_for_moves,
    wait_for_state,
    wait_until_gone,
)

OK_RUN = "class Run(BaseService):\n    pass\n"


@pytest.fixture
async def node(home: Path, tmp_path: Path) -> Orchestrator:
    """An orchestrator with a healthy service running, and a short start timeout."""
    async with Orchestrator(home, config=fast_config(start_timeout=4.0)) as orch:
        await orch.install_service(service_archive(tmp_path, "example_service"))
        await orch.start_service("example_service")
        yield orch  # type: ignore[misc]


async def healthy(orch: Orchestrator) -> None:
    assert (await orch.rpc.call("example_service/greet", {"name": "x"}))["message"] == "Hi, x!"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ("raise RuntimeError('boom at import')\n", "import_failed", "RuntimeError: boom at import"),
        ("import no_such_module\n", "import_failed", "No module named 'no_such_module'"),
        ("X = 1\n", "no_run_class", "defines no class 'Run'"),
        ("class Run:\n    pass\n", "not_a_service", "not a subclass of service_framework.BaseService"),
        ("Run = 42\n", "not_a_service", "'Run' is 42"),
        ("sys.exit(3)\n", "import_exited", r"sys.exit\(3\) while being imported"),
        ("os._exit(9)\n", "start_failed", "exit code 9"),
        (
            "class Run(BaseService):\n    def __init__(self):\n        raise KeyError('k')\n",
            "instantiation_failed",
            "KeyError",
        ),
        (
            "class Run(BaseService):\n    async def initialize(self):\n        raise OSError('no disk')\n",
            "initialize_failed",
            "initialize\\(\\) raised OSError: no disk",
        ),
        ("while True:\n    pass\n", "start_timeout", "did not finish starting within 4 s"),
        (
            "class Run(BaseService):\n    async def initialize(self):\n        await anyio.sleep_forever()\n",
            "start_timeout",
            "did not finish starting",
        ),
    ],
    ids=[
        "raises",
        "bad-import",
        "no-run",
        "run-not-service",
        "run-not-class",
        "sys-exit",
        "os-exit",
        "init-raises-in-constructor",
        "initialize-raises",
        "import-loops",
        "initialize-hangs",
    ],
)
async def test_a_service_that_cannot_start_fails_clearly(
    node: Orchestrator, tmp_path: Path, body: str, code: str, message: str
) -> None:
    await node.install_service(service_archive(tmp_path, "bad", body))
    with trio.fail_after(10), pytest.raises(ServiceManagementError, match=message) as raised:
        await node.start_service("bad")
    assert raised.value.code == code
    info = await node.get_service_info("bad")
    assert (info["state"], info["running"], info["pid"]) == ("failed", False, None)
    assert info["last_error"] == raised.value.message and info["desired_state"] == "stopped"
    await healthy(node)
    await node.stop_service("bad")  # failed -> stopped
    assert moves(node, "bad") == [("installed", "starting"), ("starting", "failed"), ("failed", "stopped")]


async def test_a_failed_service_can_be_started_again_once_fixed(node: Orchestrator, tmp_path: Path) -> None:
    await node.install_service(service_archive(tmp_path, "flaky", "raise RuntimeError('not yet')\n"))
    with pytest.raises(ServiceManagementError):
        await node.start_service("flaky")
    await node.install_service(service_archive(tmp_path, "flaky", OK_RUN, version="1.0.1"))
    await node.start_service("flaky")
    assert moves(node, "flaky")[-2:] == [("failed", "starting"), ("starting", "running")]


CRASHY = """
class Run(BaseService):
    @service_method()
    async def hard_exit(self, code: int = 7):
        os._exit(code)

    @service_method()
    async def soft_exit(self, code: int = 0):
        sys.exit(code)

    @service_method()
    async def leak(self):
        self.hog = []
        while True:
            self.hog.append(bytearray(16 * 1024 * 1024))
"""


@pytest.mark.parametrize(("method", "code"), [("hard_exit", 7), ("soft_exit", 3)])
async def test_a_service_that_exits_is_restarted(
    node: Orchestrator, tmp_path: Path, method: str, code: int
) -> None:
    await node.install_service(service_archive(tmp_path, "crashy", CRASHY))
    await node.start_service("crashy")
    pid = pid_of(node, "crashy")
    with pytest.raises(ServiceCallError, match="exit") as raised:
        await node.rpc.call(f"crashy/{method}", {"code": code})
    assert raised.value.code == "service_exited"
    await wait_for_moves(node, "crashy", "running", 2)
    info = await node.get_service_info("crashy")
    assert (info["state"], info["restart_count"], info["last_exit_status"]) == ("running", 1, code)
    assert f"exit code {code}" in info["last_error"] and info["pid"] != pid
    assert moves(node, "crashy")[1:] == [
        ("starting", "running"),
        ("running", "backoff"),
        ("backoff", "starting"),
        ("starting", "running"),
    ]
    await healthy(node)


async def test_a_clean_exit_under_on_failure_leaves_the_service_stopped(
    node: Orchestrator, tmp_path: Path
) -> None:
    await node.install_service(service_archive(tmp_path, "crashy", CRASHY))
    await node.start_service("crashy")
    with pytest.raises(ServiceCallError):
        await node.rpc.call("crashy/soft_exit", {"code": 0})
    await wait_for_state(node, "crashy", "stopped")
    assert moves(node, "crashy")[-1] == ("running", "stopped")


async def test_policy_never_leaves_a_crashed_service_failed(node: Orchestrator, tmp_path: Path) -> None:
    await node.install_service(
        service_archive(tmp_path, "crashy", CRASHY, manifest={"restart": {"policy": "never"}})
    )
    await node.start_service("crashy")
    with pytest.raises(ServiceCallError):
        await node.rpc.call("crashy/hard_exit", {})
    await wait_for_state(node, "crashy", "failed")
    assert moves(node, "crashy")[-1] == ("running", "failed")


async def test_a_leaking_service_hits_its_memory_limit_and_is_restarted(home: Path, tmp_path: Path) -> None:
    config = fast_config({"crashy": ServiceSettings(memory_limit_mb=256)})
    async with Orchestrator(home, config=config) as orch:
        await orch.install_service(service_archive(tmp_path, "example_service"))
        await orch.start_service("example_service")
        await orch.install_service(service_archive(tmp_path, "crashy", CRASHY))
        await orch.start_service("crashy")
        with trio.fail_after(10), pytest.raises(ServiceCallError) as raised:
            await orch.rpc.call("crashy/leak", {})
        assert raised.value.code in ("out_of_memory", "service_exited"), raised.value
        await wait_for_moves(orch, "crashy", "running", 2)
        info = await orch.get_service_info("crashy")
        assert info["restart_count"] == 1 and info["last_exit_status"] == 4  # EXIT_OUT_OF_MEMORY
        await healthy(orch)


CRASH_LOOP = """
import threading

class Run(BaseService):
    async def initialize(self):
        threading.Timer(0.05, os._exit, (1,)).start()
"""


async def test_a_crash_loop_backs_off_exponentially_then_fails(node: Orchestrator, tmp_path: Path) -> None:
    restart = {"initial_delay": 0.2, "multiplier": 2, "jitter": 0, "max_restarts": 4, "window": 120}
    await node.install_service(service_archive(tmp_path, "looper", CRASH_LOOP, manifest={"restart": restart}))
    await node.start_service("looper")
    await wait_for_state(node, "looper", "failed", limit=30)
    info = await node.get_service_info("looper")
    assert info["restart_count"] == 4 and "gave up after 4 restarts within 120 s" in info["last_error"]
    history = transitions(node, "looper")
    waits = [
        nxt.at - t.at
        for t, nxt in itertools.pairwise(history)
        if t.target.value == "backoff" and nxt.target.value == "starting"
    ]
    expected = [0.2, 0.4, 0.8, 1.6]
    assert len(waits) == 4
    for waited, delay in zip(waits, expected, strict=True):
        assert delay <= waited < 2 * delay + 0.2, (waits, expected)
    assert all(b > a for a, b in itertools.pairwise(waits))
    await healthy(node)


async def test_stop_during_backoff_cancels_the_restart(node: Orchestrator, tmp_path: Path) -> None:
    restart = {"initial_delay": 30}
    await node.install_service(service_archive(tmp_path, "crashy", CRASHY, manifest={"restart": restart}))
    await node.start_service("crashy")
    with pytest.raises(ServiceCallError):
        await node.rpc.call("crashy/hard_exit", {})
    await wait_for_state(node, "crashy", "backoff")
    with trio.fail_after(5):
        result = await node.stop_service("crashy")
    assert result["message"] == "Service crashy stopped"
    assert moves(node, "crashy")[-2:] == [("running", "backoff"), ("backoff", "stopped")]


async def test_a_service_killed_from_outside_is_restarted(node: Orchestrator) -> None:
    import os
    import signal

    pid = pid_of(node, "example_service")
    os.kill(pid, signal.SIGKILL)
    await wait_for_moves(node, "example_service", "running", 2)
    info = await node.get_service_info("example_service")
    assert info["last_exit_status"] == -signal.SIGKILL and "SIGKILL" in info["last_error"]
    assert not alive(pid)
    await wait_until_gone(pid)
    await healthy(node)


FAILS_AFTER_CRASH = """
from pathlib import Path

class Run(BaseService):
    async def initialize(self):
        if Path("crashed").exists():
            raise RuntimeError("cannot start after a crash")

    @service_method()
    async def crash(self):
        Path("crashed").write_text("yes")
        os._exit(1)
"""


async def test_restarts_that_fail_to_start_back_off_then_fail(node: Orchestrator, tmp_path: Path) -> None:
    restart = {"initial_delay": 0.05, "jitter": 0, "max_restarts": 2}
    archive = service_archive(tmp_path, "fragile", FAILS_AFTER_CRASH, manifest={"restart": restart})
    await node.install_service(archive)
    await node.start_service("fragile")
    with pytest.raises(ServiceCallError):
        await node.rpc.call("fragile/crash", {})
    await wait_for_state(node, "fragile", "failed")
    assert moves(node, "fragile")[1:] == [
        ("starting", "running"),
        ("running", "backoff"),
        ("backoff", "starting"),
        ("starting", "backoff"),
        ("backoff", "starting"),
        ("starting", "failed"),
    ]
    info = await node.get_service_info("fragile")
    assert (
        "cannot start after a crash" in info["last_error"]
        and "gave up after 2 restarts" in info["last_error"]
    )


async def test_a_restart_that_cannot_even_be_planned_fails_the_service(
    node: Orchestrator, tmp_path: Path
) -> None:
    await node.install_service(
        service_archive(tmp_path, "crashy", CRASHY, manifest={"restart": {"initial_delay": 2}})
    )
    await node.start_service("crashy")
    with pytest.raises(ServiceCallError):
        await node.rpc.call("crashy/hard_exit", {})
    await wait_for_state(node, "crashy", "backoff")
    directory = Path((await node.get_service_info("crashy"))["directory"])
    (directory / "config" / "default.json").write_text("{not json")  # the disk went bad meanwhile
    await wait_for_state(node, "crashy", "failed")
    assert moves(node, "crashy")[-1] == ("backoff", "failed")
    assert "config/default.json" in (await node.list_services())["services"]["crashy"]["last_error"]
    await healthy(node)
