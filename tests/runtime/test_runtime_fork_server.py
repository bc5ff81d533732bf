"""The fork server: services forked from a warm process keep every property of a process of their own."""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator
from p2p_orchestrator.runtime._spawn import PACKAGE_ROOT
from p2p_orchestrator.runtime.fork_server import open_fork_server
from tests.runtime.support import alive, fast_config, pid_of, service_archive, wait_for_moves, wait_until_gone

SELF_REPORT = """
import random

LOADED = sorted(sys.modules)

class Run(BaseService):
    @service_method()
    async def report(self):
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass  # the directory listed itself and is closed now
        with open("/proc/self/environ", "rb") as environ:
            proc_environ = environ.read().decode(errors="replace")
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "pgid": os.getpgid(0),
            "cwd": os.getcwd(),
            "fds": fds,
            "environ": dict(os.environ),
            "proc_environ": proc_environ,
            "modules": LOADED,
            "path": sys.path,
            "random": random.getrandbits(64),
        }
"""

SECRET = "P2P_TEST_NODE_SECRET"


@pytest.fixture
def node_secret() -> Iterator[str]:
    """A variable of the node's environment that no service may see."""
    os.environ[SECRET] = "hunter2"
    yield SECRET
    del os.environ[SECRET]


async def test_forked_services_each_get_a_clean_process_of_their_own(
    home: Path, tmp_path: Path, node_secret: str
) -> None:
    async with Orchestrator(home, config=fast_config()) as rt:
        reports = {}
        for name in ("left", "right"):
            helper = {f"{name}_helper.py": "VALUE = 1\n"}
            await rt.install_service(service_archive(tmp_path, name, SELF_REPORT, files=helper))
            await rt.start_service(name)
            reports[name] = await rt.rpc.call(f"{name}/report", {})
        forks = rt.supervisor.forks
        assert forks is not None and forks.pid is not None
        for name, report in reports.items():
            other = "right" if name == "left" else "left"
            assert report["ppid"] == forks.pid  # forked, not started with an interpreter
            assert report["pgid"] == report["pid"]  # a process group of its own
            assert report["cwd"] == str(home / "data" / name)
            # its descriptors: stdin on /dev/null, its output pipe, its channel; nothing of the node's
            fds = report["fds"]
            assert fds["0"] == "/dev/null"
            assert fds["1"] == fds["2"] and fds["1"].startswith("pipe:")
            others = {fd: target for fd, target in fds.items() if fd not in ("0", "1", "2")}
            assert "socket" in {target.split(":")[0] for target in others.values()}  # its channel
            assert not [target for target in others.values() if target.startswith("/")]  # no file
            # its environment: its own, none of the node's secrets, not even in /proc/self/environ
            assert report["environ"]["HOME"] == str(home / "data" / name)
            assert report["environ"]["P2P_ORCHESTRATOR_SERVICE"] == name
            assert node_secret not in report["environ"] and node_secret not in report["proc_environ"]
            # its module table and path: nothing of the other service
            assert f"{name}_helper" not in report["modules"]  # imported only when main.py asks
            assert not any(other in module for module in report["modules"])
            assert f"/{name}/" in report["path"][0]
            assert not any(f"/{other}/" in entry for entry in report["path"])
        assert reports["left"]["random"] != reports["right"]["random"]  # random is seeded anew per fork


SPAWNER = """
import subprocess

class Run(BaseService):
    @service_method()
    async def spawn(self):
        return subprocess.Popen(["sleep", "60"]).pid

    @service_method()
    async def greet(self, name: str):
        return {"message": f"Hello, {name}!"}
"""


async def test_a_killed_fork_server_takes_its_children_and_theirs(home: Path, tmp_path: Path) -> None:
    """SIGKILL of the fork server: its children die with it, what they started too, and they are restarted."""
    async with Orchestrator(home, config=fast_config()) as rt:
        await rt.install_service(service_archive(tmp_path, "kept", SPAWNER))
        await rt.start_service("kept")
        grandchild = await rt.rpc.call("kept/spawn", {})
        forks = rt.supervisor.forks
        assert forks is not None
        zygote, child = forks.pid, pid_of(rt, "kept")
        assert zygote is not None and alive(grandchild)
        os.kill(zygote, signal.SIGKILL)
        await wait_until_gone(child)
        await wait_until_gone(grandchild)
        await wait_for_moves(rt, "kept", "running", 2)  # restarted, by a new fork server
        assert forks.pid not in (None, zygote)
        assert (await rt.rpc.call("kept/greet", {"name": "again"}))["message"].endswith(", again!")
        assert alive(pid_of(rt, "kept"))


async def test_with_the_fork_server_off_each_service_is_a_new_interpreter(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=fast_config(fork_server=False)) as rt:
        await rt.install_service(service_archive(tmp_path, "solo", SELF_REPORT))
        await rt.start_service("solo")
        report = await rt.rpc.call("solo/report", {})
        assert rt.supervisor.forks is None
        assert report["ppid"] == os.getpid()
        assert report["pgid"] == report["pid"]


async def test_closing_the_node_ends_the_fork_server(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=fast_config()) as rt:
        await rt.install_service(service_archive(tmp_path, "kept"))
        await rt.start_service("kept")
        assert rt.supervisor.forks is not None
        zygote = rt.supervisor.forks.pid
        assert zygote is not None
    assert not alive(zygote)


async def test_a_stop_signal_to_every_process_leaves_the_stopping_to_the_node(
    home: Path, tmp_path: Path
) -> None:
    """SIGTERM to the fork server (as systemd sends it to the whole cgroup) does not end it or its children."""
    async with Orchestrator(home, config=fast_config()) as rt:
        await rt.install_service(service_archive(tmp_path, "kept"))
        await rt.start_service("kept")
        forks = rt.supervisor.forks
        assert forks is not None and forks.pid is not None
        zygote = forks.pid
        os.kill(zygote, signal.SIGTERM)
        os.kill(zygote, signal.SIGINT)
        # the fork server still serves: a restart forks a new child from the same process
        await rt.restart_service("kept")
        assert forks.pid == zygote and alive(zygote)
        assert (await rt.rpc.call("kept/greet", {"name": "again"}))["message"].endswith(", again!")
        # and its children took back the default handlers: SIGTERM ends a service (and it is restarted)
        child = pid_of(rt, "kept")
        os.kill(child, signal.SIGTERM)
        await wait_until_gone(child)


async def test_a_child_that_exits_at_once_is_watched_and_reported_as_exec_would(tmp_path: Path) -> None:
    """Its exit may be reported before the start sees its pid: the handle still names that process."""
    channel, theirs = socket.socketpair()
    output, output_w = os.pipe()
    try:
        async with open_fork_server() as forks:
            argv = ["svc", "--no-such-option", "--parent", str(os.getpid()), "--root", str(PACKAGE_ROOT)]
            child = await forks.fork(argv, tmp_path, {"PATH": os.defpath}, (theirs.fileno(), output_w))
            os.close(output_w)
            assert await child.wait() == 2  # argparse's usage error, the code a new interpreter exits with
            pidfd = child.open_pidfd()  # after the report: still this process, exited
            assert select.select([pidfd], [], [], 0)[0]
            os.close(pidfd)
            child.close()
        assert b"unrecognized arguments: --no-such-option" in os.read(output, 65536)  # its output, its pipe
    finally:
        channel.close()
        theirs.close()
        os.close(output)
