"""Services written for P2P Core's framework run unmodified: packed with ``tar -czf``, on real processes.

The services under ``services/`` are written the way P2P Core's are (``layers.*``
imports, ``Run(service_name, proxy_client)``, asyncio tasks, ``self.metrics``...),
and one is the seed README's example, verbatim.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator import Orchestrator, OrchestratorConfig, PermissionDenied, ServiceCallError
from tests.runtime.support import fast_config, wait_for_moves

SERVICES = Path(__file__).parent / "services"


def tar_czf(name: str, out_dir: Path) -> bytes:
    """``tar -czf name.tar.gz name/``, as a P2P Core author packs a service."""
    target = out_dir / f"{name}.tar.gz"
    subprocess.run(
        ["tar", "-czf", str(target), "--exclude=__pycache__", f"{name}/"], cwd=SERVICES, check=True
    )
    return target.read_bytes()


@pytest.fixture
async def orch(home: Path) -> Any:
    async with Orchestrator(home, config=fast_config(auto_start=True)) as orchestrator:
        yield orchestrator


async def test_a_p2p_core_service_installs_starts_and_answers(orch: Orchestrator, tmp_path: Path) -> None:
    installed = await orch.install_service(tar_czf("counter", tmp_path))
    assert installed["auto_started"] is True and "warnings" not in installed
    call = orch.rpc.call

    who = await call("counter/whoami", {})
    assert who["service_name"] == "counter"  # the directory wins over SERVICE_NAME
    assert who["constructed_with"] == ["counter", True]  # Run(name, proxy), as P2P Core's loader did
    assert who["status"] == "running"
    assert who["info"] == {"version": "2.1.0", "domain": "testing"}
    assert who["loop"].startswith("asyncio")
    assert who["trio_imported"] is False

    assert (await call("counter/add", {"amount": 2}))["total"] == 2
    assert await call("counter/squares", {"count": 4}) == [0, 1, 4, 9]
    assert await call("counter/bounded_wait", {"seconds": 5, "limit": 0.05}) == "timed out"
    assert await call("counter/bounded_wait", {"seconds": 0, "limit": 5}) == "done"
    assert await call("counter/shout", {"text": "hi"}) == {"exec": "HI", "shell": "from-shell"}

    ping = await call("counter/ping", {})
    assert ping["status"] == "alive" and ping["service"] == "counter" and ping["heartbeat"] is True
    assert ping["uptime"] > 0 and ping["timestamp"] > 1.7e9


async def test_metrics_and_the_built_in_service_info(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(tar_czf("counter", tmp_path))
    call = orch.rpc.call
    for amount in (1, 2):
        await call("counter/add", {"amount": amount})
    with pytest.raises(ServiceCallError, match="always fails"):
        await call("counter/fails", {})
    await call("counter/untracked", {})
    data_keys = await call("counter/timed", {})
    assert {"set_counter", "things_count", "mood", "block_ms_count", "manual_ms_avg"} <= set(data_keys)

    info = await call("counter/get_service_info", {})
    assert {
        "name",
        "status",
        "version",
        "description",
        "exposed_methods",
        "metadata",
        "uptime",
        "health_report",
        "counters",
        "gauges",
        "timers",
    } <= info.keys()
    assert info["description"] == "Counts what it is given, in the background too."
    assert "add" in info["exposed_methods"] and "private" not in info["exposed_methods"]
    counters = info["counters"]
    assert counters["method_add_calls"] == 2 and counters["method_add_success"] == 2
    assert counters["method_fails_calls"] == 1 and counters["method_fails_errors"] == 1
    assert "method_untracked_calls" not in counters
    assert counters["ticks"] > 0 and counters["set_counter"] == 7 and counters["things_count"] == 3
    assert info["gauges"]["total"] == 3 and info["gauges"]["mood"] == "fine"
    assert info["timers"]["method_add_duration_ms"]["count"] == 2
    assert info["timers"]["manual_ms"] == {
        "count": 1,
        "avg_ms": 5.0,
        "min_ms": 5.0,
        "max_ms": 5.0,
        "sum_ms": 5.0,
    }
    report = info["health_report"]
    assert report["status"] == "running" and report["pid"] > 0 and report["memory_mb"] > 0

    # the orchestrator's own view carries the same metrics
    described = await orch.get_service_info("counter")
    assert described["metrics"]["counters"]["method_add_calls"] == 2
    everything = await orch.get_metrics()
    assert everything["services"]["counter"]["calls"] >= 6
    assert everything["services"]["counter"]["call_errors"] == 1


async def test_cache_ttl_serves_a_result_per_parameter_set(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(tar_czf("counter", tmp_path))
    call = orch.rpc.call
    assert await call("counter/cached", {"key": "a"}) == {"key": "a", "runs": 1}
    assert await call("counter/cached", {"key": "a"}) == {"key": "a", "runs": 1}
    assert await call("counter/cached", {"key": "b"}) == {"key": "b", "runs": 2}


async def test_stop_runs_cleanup_with_the_stopping_status(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(tar_czf("counter", tmp_path))
    data_dir = Path((await orch.get_service_info("counter"))["data_directory"])
    await orch.stop_service("counter")
    assert (data_dir / "cleanup-ran").read_text() == "stopping"


async def test_the_seed_readme_service_verbatim(orch: Orchestrator, tmp_path: Path) -> None:
    installed = await orch.install_service(tar_czf("your_service", tmp_path))
    assert installed["auto_started"] is True
    assert await orch.rpc.call("your_service/example_method", {}) == {"message": "Hello from service!"}
    info = await orch.rpc.call("your_service/get_service_info", {})
    assert info["name"] == "your_service" and info["description"] == "Ваш сервис"


async def test_proxy_idioms_the_manager_and_manifest_leniencies(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(tar_czf("counter", tmp_path))
    installed = await orch.install_service(tar_czf("monitor_v2", tmp_path))
    # its manifest says "monitoring" and depends on the framework itself: installed as its directory says
    assert installed["service_name"] == "monitor_v2"
    assert any("'monitoring'" in warning for warning in installed["warnings"])
    assert installed["auto_started"] is True
    survey = await orch.rpc.call("monitor_v2/survey", {})
    assert survey == {
        "services": ["counter", "monitor_v2"],
        "added": 2,
        "by_call": 5,
        "local": 5,
        "has_log_collector": True,
        "manager_services": ["monitor_v2"],
        "running": True,
        "counter_saw": {"peer_id": None, "role": None, "local": True, "service": "monitor_v2"},
    }


async def test_auto_start_false_and_the_operators_default(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=OrchestratorConfig()) as orch:
        installed = await orch.install_service(tar_czf("quiet", tmp_path))
        assert installed["auto_started"] is False and not orch.is_running("quiet")
        installed = await orch.install_service(tar_czf("your_service", tmp_path))
        assert installed["auto_started"] is True  # the default: P2P Core started every service it loaded
    async with Orchestrator(tmp_path / "other", config=fast_config()) as orch:  # [runtime] auto_start = false
        installed = await orch.install_service(tar_czf("your_service", tmp_path))
        assert installed["auto_started"] is False


async def test_a_trio_service_opts_in(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(tar_czf("trio_ticker", tmp_path))
    answer = await orch.rpc.call("trio_ticker/tick", {"times": 5})
    assert answer == {"ticks": 5, "asyncio_loop": False}


async def test_a_bad_event_loop_is_refused(orch: Orchestrator, tmp_path: Path) -> None:
    service = tmp_path / "src" / "loopy"
    service.mkdir(parents=True)
    (service / "main.py").write_text(
        "from service_framework import BaseService\nclass Run(BaseService): pass\n"
    )
    (service / "manifest.json").write_text('{"event_loop": "gevent"}')
    subprocess.run(["tar", "-czf", str(tmp_path / "loopy.tar.gz"), "loopy/"], cwd=service.parent, check=True)
    with pytest.raises(Exception, match="event_loop must be one of 'asyncio', 'trio'"):
        await orch.install_service(tmp_path / "loopy.tar.gz")


async def test_a_service_that_blocks_asyncio_is_restarted(home: Path, tmp_path: Path) -> None:
    """Hang detection on asyncio: the probe goes unanswered, the stacks are dumped, the process replaced."""
    from p2p_orchestrator import ServiceSettings

    settings = ServiceSettings(health={"interval": 0.2, "timeout": 0.3, "failures": 2, "start_period": 0})
    async with Orchestrator(home, config=fast_config({"counter": settings}, auto_start=True)) as orch:
        await orch.install_service(tar_czf("counter", tmp_path))
        pid = orch.supervisor.unit("counter").process.pid  # type: ignore[union-attr]
        with pytest.raises(ServiceCallError):
            # time.sleep in a coroutine: the whole loop is blocked, not just this call
            await orch.rpc.call("counter/block", {"seconds": 30})
        await wait_for_moves(orch, "counter", "running", 2)  # started, then started again
        assert orch.supervisor.unit("counter").process.pid != pid  # type: ignore[union-attr]
        log_text = (home / "logs" / "counter.log").read_text()
        assert "in block" in log_text  # the stack dump names the blocking frame


async def test_requires_auth_and_caller_identity_across_nodes(tmp_path: Path) -> None:
    from p2p_orchestrator.testing import swarm

    # node 0 gives node 1 the reader role; node 2 is a stranger to node 0
    def roles(i: int, j: int) -> str | None:
        return "reader" if (i, j) == (0, 1) else None

    async with swarm(
        3, tmp_dir=tmp_path / "swarm", roles=roles, names=["coordinator", "worker", "stranger"]
    ) as nodes:
        await nodes[0].orchestrator.install_service(tar_czf("counter", tmp_path))
        reader, stranger = nodes[1].proxy(nodes[0].peer_id), nodes[2].proxy(nodes[0].peer_id)
        assert (await reader.call_method("counter/add", {"amount": 1}))["total"] == 1
        assert await stranger.call_method("counter/open_door", {}) == "open"
        assert (await stranger.call_method("counter/ping", {}))["status"] == "alive"
        # a stranger learns nothing from a refusal: a method that needs a role, a private one, a
        # missing one and a missing service all read the same
        for path in ("counter/add", "counter/private", "counter/nothing", "nothing/add"):
            with pytest.raises(PermissionDenied) as refused:
                await stranger.call_method(path, {})
            assert refused.value.code == "method_unavailable"
            assert refused.value.message == f"{path} is not available to peers without a role on this node"
        with pytest.raises(PermissionDenied):
            await reader.call_method("counter/private", {})
        assert (await nodes[0].orchestrator.get_service_info("counter"))["metrics"]["counters"][
            "method_add_calls"
        ] == 1
        assert await nodes[0].orchestrator.rpc.call("counter/caller", {}) == {
            "peer_id": None,
            "role": None,
            "local": True,
            "service": None,
        }

        # a service on node 1 calls node 0 by name, by peer ID, and every idiom in between
        await nodes[1].orchestrator.install_service(tar_czf("counter", tmp_path))
        await nodes[1].orchestrator.install_service(tar_czf("monitor_v2", tmp_path))
        survey = await nodes[1].orchestrator.rpc.call(
            "monitor_v2/remote_survey", {"peer_id": nodes[0].peer_id}
        )
        assert survey["totals"] == [2, 3, 4, 5, 6]
        assert survey["caller"] == {
            "peer_id": nodes[1].peer_id,
            "role": "reader",
            "local": False,
            "service": None,
        }
