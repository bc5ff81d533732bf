"""A peer with the read role reads a service's output and the node's events; bounded, typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2p_orchestrator import PermissionDenied, ServiceCallError, ServiceManagementError
from p2p_orchestrator.node import Node
from p2p_orchestrator.testing import swarm
from tests.node.support import fast_config, service_archive

CHATTY = """
class Run(BaseService):
    @service_method(public=True)
    async def say(self, text, times=1):
        for i in range(times):
            print(f"{text} {i}", flush=True)
        return times
"""


async def wait_for_line(node: Node, name: str, line: str) -> None:
    """Output reaches the log file through the node's reader task: follow the log until ``line``."""
    with trio.fail_after(10):
        async with node.orchestrator.follow_logs(name, lines=1000) as follower:
            async for seen in follower:
                if seen == line:
                    return


async def test_a_reader_reads_logs_and_events_of_another_node(tmp_path: Path) -> None:
    roles = {1: "reader", 2: None}
    with trio.fail_after(60):
        async with swarm(
            3,
            tmp_dir=tmp_path / "swarm",
            config=fast_config(),
            roles=lambda i, j: roles[j] if i == 0 else "admin",
        ) as nodes:
            target, reader, stranger = nodes
            await target.orchestrator.install_service(service_archive(tmp_path, "chatty", CHATTY))
            await target.orchestrator.start_service("chatty")
            assert await target.rpc.call("chatty/say", {"text": "hello", "times": 5}) == 5
            await wait_for_line(target, "chatty", "hello 4")
            remote = reader.proxy(target.peer_id)

            logs = await remote.call_method(
                "orchestrator/get_service_logs", {"service_name": "chatty", "lines": 3}
            )
            assert logs == {
                "service_name": "chatty",
                "lines": ["hello 2", "hello 3", "hello 4"],
                "truncated": False,
            }

            events = await remote.call_method("orchestrator/get_events", {"types": ["service_started"]})
            [started] = events["events"]
            assert (started["type"], started["service"], started["version"]) == (
                "service_started",
                "chatty",
                "1.0.0",
            )
            everything = await remote.call_method("orchestrator/get_events", {"limit": 1000})
            assert [e["type"] for e in everything["events"]][:2] == ["service_installed", "service_started"]
            assert (await remote.call_method("orchestrator/get_events", {"limit": 0}))["events"] == []

            with pytest.raises(ServiceCallError) as too_many:
                await remote.call_method(
                    "orchestrator/get_service_logs", {"service_name": "chatty", "lines": 1001}
                )
            assert too_many.value.code == "bad_params"
            with pytest.raises(ServiceCallError) as bad_types:
                await remote.call_method("orchestrator/get_events", {"types": [1]})
            assert bad_types.value.code == "bad_params"
            with pytest.raises(ServiceManagementError) as unknown:
                await remote.call_method("orchestrator/get_service_logs", {"service_name": "ghost"})
            assert unknown.value.code == "not_installed"
            for method, params in (
                ("get_service_logs", {"service_name": "chatty"}),
                ("get_events", {}),
            ):
                with pytest.raises(PermissionDenied):
                    await stranger.proxy(target.peer_id).call_method(f"orchestrator/{method}", params)


async def test_a_remote_log_reply_keeps_the_newest_lines_within_its_byte_bound(tmp_path: Path) -> None:
    async with swarm(2, tmp_dir=tmp_path / "swarm", config=fast_config()) as nodes:
        target, caller = nodes
        await target.orchestrator.install_service(service_archive(tmp_path, "chatty", CHATTY))
        await target.orchestrator.start_service("chatty")
        wide = "x" * 4000
        assert await target.rpc.call("chatty/say", {"text": wide, "times": 400}) == 400  # 1.6 MB of output
        await wait_for_line(target, "chatty", f"{wide} 399")
        logs = await caller.proxy(target.peer_id).call_method(
            "orchestrator/get_service_logs", {"service_name": "chatty", "lines": 1000}
        )
        assert logs["truncated"] is True
        assert logs["lines"][-1] == f"{wide} 399"
        assert 200 < len(logs["lines"]) < 400
        assert sum(len(line) for line in logs["lines"]) <= 1024 * 1024


async def test_a_remote_events_reply_keeps_the_newest_within_its_byte_bound(tmp_path: Path) -> None:
    """Wide distributions publish big events: 1000 of them would not fit in one frame."""
    async with swarm(2, tmp_dir=tmp_path / "swarm", config=fast_config()) as nodes:
        target, caller = nodes
        wide = {
            f"peer{i:03}": {"bytes_received": i, "bytes_sent": i, "state": "transferring"} for i in range(64)
        }
        for i in range(1000):
            target.orchestrator.events.publish("distribution_progress", "svc", "1.0.0", step=i, targets=wide)
        reply = await caller.proxy(target.peer_id).call_method("orchestrator/get_events", {"limit": 1000})
        assert reply["truncated"] is True
        steps = [event["data"]["step"] for event in reply["events"]]
        assert 50 < len(steps) < 1000 and steps == list(
            range(1000 - len(steps), 1000)
        )  # the newest, in order
