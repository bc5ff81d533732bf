"""A service cannot reach what is not its own: the Landlock sandbox, tried from inside a service, on both loops."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator, ServiceSettings
from p2p_orchestrator.runtime._landlock import abi_version
from tests.runtime.support import fast_config, service_archive

pytestmark = pytest.mark.skipif(abi_version() < 6, reason="this kernel's Landlock is older than ABI 6")

PROBE = """
import signal


def attempt(action):
    try:
        action()
    except PermissionError:
        return "denied"
    except OSError as exc:
        return f"error {exc.errno}"
    return "allowed"


class Run(BaseService):
    @service_method(public=False)
    async def probe(self, paths: dict, node_pid: int, port: int):
        def read(path):
            return lambda: open(path, "rb").read(1)

        def write(path):
            return lambda: open(path, "w").write("x")

        def connect():
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=2):
                pass

        os.symlink(paths["identity"], "planted-link")
        return {
            "identity": attempt(read(paths["identity"])),
            "state_db": attempt(read(paths["state_db"])),
            "roles": attempt(write(paths["roles"])),
            "other_version": attempt(read(paths["other_main"])),
            "other_data": attempt(read(paths["other_data"])),
            "outside_write": attempt(write(paths["outside"])),
            "node_environ": attempt(read(f"/proc/{node_pid}/environ")),
            "signal_node": attempt(lambda: os.kill(node_pid, signal.SIGUSR2)),
            "signal_parent": attempt(lambda: os.kill(os.getppid(), signal.SIGKILL)),  # the fork server
            "parent_environ": attempt(read(f"/proc/{os.getppid()}/environ")),
            "planted_link": attempt(read("planted-link")),
            "own_data": attempt(write(os.path.join(self.data_dir, "mine.txt"))),
            "own_code": attempt(read(os.path.join(os.path.dirname(__file__), "main.py"))),
            "tmp": attempt(lambda: __import__("tempfile").TemporaryFile().write(b"x")),
            "tcp": attempt(connect),
            "env_has_secret": "NODE_SECRET" in os.environ,
            "home": os.environ.get("HOME"),
        }
"""


async def test_a_service_reaches_only_its_own_files(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_SECRET", "hunter2")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    services = {"walled": ServiceSettings(network=False)}
    async with Orchestrator(home, config=fast_config(services)) as orch:
        await orch.install_service(service_archive(tmp_path, "other", "class Run(BaseService): pass\n"))
        await orch.start_service("other")
        other_data = Path((await orch.get_service_info("other"))["data_directory"]) / "secret.txt"
        other_data.write_text("other's")
        (home / "identity.key").write_bytes(b"secret key")
        (home / "roles.toml").write_text("[roles]\n")
        paths = {
            "identity": str(home / "identity.key"),
            "state_db": str(home / "state.db"),
            "roles": str(home / "roles.toml"),
            "other_main": str(Path((await orch.get_service_info("other"))["directory"]) / "main.py"),
            "other_data": str(other_data),
            "outside": str(tmp_path / "written-by-a-service"),
        }
        for name in ("prober", "walled"):
            await orch.install_service(service_archive(tmp_path, name, PROBE))
            await orch.start_service(name)
        found = await orch.rpc.call("prober/probe", {"paths": paths, "node_pid": os.getpid(), "port": port})
        walled = await orch.rpc.call("walled/probe", {"paths": paths, "node_pid": os.getpid(), "port": port})
        info = await orch.get_service_info("prober")
        status = await orch.get_orchestrator_status()
    listener.close()
    for key in ("identity", "state_db", "roles", "other_version", "other_data", "outside_write"):
        assert found[key] == "denied", (key, found)
    assert found["node_environ"] == "denied"
    assert found["signal_node"] == "denied"
    assert (found["signal_parent"], found["parent_environ"]) == ("denied", "denied")
    assert found["planted_link"] == "denied"
    assert (found["own_data"], found["own_code"], found["tmp"]) == ("allowed", "allowed", "allowed")
    assert found["tcp"] == "allowed" and walled["tcp"] == "denied"
    assert found["env_has_secret"] is False
    assert found["home"] == info["data_directory"]
    assert not (tmp_path / "written-by-a-service").exists()
    assert info["sandbox"]["applied"] is True and info["sandbox"]["abi"] >= 6
    assert status["sandbox"] == {"enabled": True, "landlock_abi": abi_version(), "enforced": True}


async def test_the_operator_may_turn_the_sandbox_off(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=fast_config(sandbox=False)) as orch:
        body = """
class Run(BaseService):
    @service_method(public=False)
    async def read(self, path: str):
        return open(path).read()
"""
        await orch.install_service(service_archive(tmp_path, "loose", body))
        await orch.start_service("loose")
        (tmp_path / "anywhere.txt").write_text("here")
        assert await orch.rpc.call("loose/read", {"path": str(tmp_path / "anywhere.txt")}) == "here"
        assert (await orch.get_service_info("loose"))["sandbox"]["requested"] is False
