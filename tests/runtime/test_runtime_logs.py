"""Each service's output in its own size-capped, rotated log; tail and follow."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Orchestrator, ServiceManagementError
from p2p_orchestrator.runtime.logs import RotatingLog
from tests.runtime.support import fast_config, service_archive

CHATTY = """
class Run(BaseService):
    async def initialize(self):
        print("hello from initialize")
        self.logger.warning("a warning via logging")

    @service_method()
    async def say(self, text: str):
        print(text)
        return True

    @service_method()
    async def spam(self, megabytes: int):
        line = "x" * 1023 + "\\n"
        for _ in range(megabytes * 1024):
            sys.stdout.write(line)
        print("spam done", file=sys.stderr)
        return True
"""


async def test_output_goes_to_the_services_log(rt: Orchestrator, tmp_path: Path) -> None:
    await rt.install_service(service_archive(tmp_path, "chatty", CHATTY))
    await rt.start_service("chatty")
    lines = await rt.service_logs("chatty")
    assert "hello from initialize" in lines
    assert any("WARNING service.chatty: a warning via logging" in line for line in lines)
    assert lines[0].startswith("--- ") and "starting chatty 1.0.0" in lines[0]
    await rt.stop_service("chatty")
    assert "ended: exit code 0" in (await rt.service_logs("chatty", lines=1))[0]
    with pytest.raises(ServiceManagementError, match="not installed"):
        await rt.service_logs("../../etc/passwd")


async def test_follow_yields_new_lines_as_they_are_written(rt: Orchestrator, tmp_path: Path) -> None:
    await rt.install_service(service_archive(tmp_path, "chatty", CHATTY))
    await rt.start_service("chatty")
    async with rt.follow_logs("chatty", lines=1) as follower:
        seen = [await follower.__anext__()]
        await rt.rpc.call("chatty/say", {"text": "first"})
        await rt.rpc.call("chatty/say", {"text": "second"})
        with trio.fail_after(5):
            async for line in follower:
                seen.append(line)
                if line == "second":
                    break
    assert seen[-2:] == ["first", "second"]


async def test_a_spamming_service_cannot_fill_the_disk(home: Path, tmp_path: Path) -> None:
    config = fast_config(log_max_bytes=256 * 1024, log_backups=2)
    async with Orchestrator(home, config=config) as orch:
        await orch.install_service(service_archive(tmp_path, "chatty", CHATTY))
        await orch.start_service("chatty")
        with trio.fail_after(20):
            await orch.rpc.call("chatty/spam", {"megabytes": 4})
            async with orch.follow_logs("chatty") as follower:
                await orch.rpc.call("chatty/say", {"text": "after the spam"})
                async for line in follower:
                    if line == "after the spam":
                        break
        files = sorted((home / "logs").glob("chatty.log*"))
        assert [f.name for f in files] == ["chatty.log", "chatty.log.1", "chatty.log.2"]
        assert sum(f.stat().st_size for f in files) <= 3 * 256 * 1024
        assert (await orch.service_logs("chatty", lines=1)) == ["after the spam"]
        assert "spam done" in await orch.service_logs("chatty", lines=400)


async def test_a_disk_that_refuses_output_loses_the_output_not_the_node(tmp_path: Path) -> None:
    """Regression: a full disk made the log write raise, which crashed the supervisor and the node.

    ``/dev/full`` refuses every write with ENOSPC, like a full filesystem.
    """
    log = RotatingLog(Path("/dev/full"), max_bytes=1024, backups=1)
    follower = log.subscribe()
    try:
        log.write(b"first line\n")
        log.write(b"second line\n")
        assert log.lost_bytes == len(b"first line\nsecond line\n")
        assert follower.receive_nowait() == b"first line\n"  # followers still get the output
    finally:
        log.close_followers()
        log.close_file()
