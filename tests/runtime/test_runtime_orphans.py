"""No service process outlives its node, however the node ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import trio

from p2p_orchestrator import Orchestrator
from p2p_orchestrator.runtime._procfs import process_start_ticks
from p2p_orchestrator.runtime.pidfiles import PidFiles
from tests.helpers import REPO
from tests.runtime.support import alive, fast_config, service_archive, wait_until_gone

NODE = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from p2p_orchestrator import Orchestrator
    from tests.runtime.support import fast_config

    async def main(home, archive):
        async with Orchestrator(home, config=fast_config()) as orch:
            await orch.install_service(Path(archive))
            await orch.start_service("example_service")
            print(orch.supervisor.unit("example_service").process.pid, orch.supervisor.forks.pid, flush=True)
            await trio.sleep_forever()

    trio.run(main, sys.argv[1], sys.argv[2])
    """
)


async def test_no_child_outlives_a_node_killed_with_sigkill(home: Path, tmp_path: Path) -> None:
    archive = tmp_path / "example_service.tar.gz"
    archive.write_bytes(service_archive(tmp_path, "example_service"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    node = await trio.lowlevel.open_process(
        [sys.executable, "-c", NODE, str(home), str(archive)], stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    try:
        assert node.stdout is not None
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await node.stdout.receive_some(100)
                assert chunk, "the node exited before starting its service"
                line += chunk
        child, fork_server = map(int, line.split())
        assert alive(child)
        assert int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]) == fork_server
        node.kill()  # SIGKILL: no cleanup code of the node runs
        await node.wait()
        # PR_SET_PDEATHSIG did it twice: the fork server died with the node, the service with it
        await wait_until_gone(fork_server, limit=5)
        await wait_until_gone(child, limit=5)
    finally:
        node.kill()
        await node.wait()
        if node.stdout is not None:
            await node.stdout.aclose()
    # the next node on this home finds the pid file and checks the process is gone
    async with Orchestrator(home, config=fast_config()) as orch:
        assert not list((home / "run").glob("*.pid")) or orch.is_running("example_service")


async def test_a_node_kills_leftovers_recorded_by_its_predecessor(home: Path) -> None:
    # a process that survived its node (as if PDEATHSIG had not fired), in its own group
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        pidfiles = PidFiles(home / "run")
        pidfiles.write("ghost", leftover.pid, leftover.pid)
        # a record whose pid now belongs to another process (different start time) is left alone
        (home / "run" / "recycled.pid").write_text(
            f'{{"pid": {unrelated.pid}, "start_ticks": {process_start_ticks(unrelated.pid) - 1}, '
            f'"pgid": {unrelated.pid}}}'
        )
        async with Orchestrator(home, config=fast_config()):
            assert leftover.wait(timeout=5) == -signal.SIGKILL
            assert unrelated.poll() is None
        assert not list((home / "run").glob("*.pid"))
    finally:
        for proc in (leftover, unrelated):
            proc.kill()
            proc.wait()
