"""Operations interrupted at every step leave each service fully old or fully new.

In-process: a crash hook raises at each named step boundary.  Real processes: the
node process is SIGKILLed at each step (``P2P_ORCHESTRATOR_CRASHPOINT``) and the
store is reopened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator, OrchestratorConfig
from p2p_orchestrator.config import RuntimeSettings
from p2p_orchestrator.crashpoints import CRASHPOINT_ENV, set_crash_hook
from tests.helpers import REPO, make_archive, tree_digest

INSTALL_STEPS = [
    "store.stage.done",
    "store.install.before_move",
    "store.install.after_move",
    "store.install.before_commit",
]


class Interrupted(Exception):
    pass


def _raise_at(step: str) -> None:
    def hook(name: str) -> None:
        if name == step:
            raise Interrupted(step)

    set_crash_hook(hook)


def _debris(home: Path) -> list[Path]:
    return [*(home / "staging").iterdir(), *(home / "trash").iterdir()]


async def _current_dir(orch: Orchestrator) -> Path:
    return Path((await orch.get_service_info("example_service"))["directory"])


@pytest.mark.parametrize("step", INSTALL_STEPS)
async def test_upgrade_interrupted_before_the_switch_keeps_the_old_version(
    step: str, home: Path, tmp_path: Path
) -> None:
    async with Orchestrator(home) as orch:
        v1 = await orch.install_service(make_archive(tmp_path, version="1.0.0"))
        v1_dir = await _current_dir(orch)
        digest = tree_digest(v1_dir)
        _raise_at(step)
        with pytest.raises(Interrupted):
            await orch.install_service(make_archive(tmp_path, version="2.0.0"))
        set_crash_hook(None)
        info = await orch.get_service_info("example_service")
        assert info["archive_hash"] == v1["archive_hash"]
        assert tree_digest(v1_dir) == digest
        assert _debris(home) == []
        assert len(info["versions"]) == 1
        assert len(list(v1_dir.parent.iterdir())) == 1
    async with Orchestrator(home) as orch:
        assert (await orch.get_service_info("example_service"))["archive_hash"] == v1["archive_hash"]


async def test_upgrade_interrupted_after_the_commit_is_the_new_version(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home) as orch:
        await orch.install_service(make_archive(tmp_path, version="1.0.0"))
        _raise_at("store.install.after_commit")
        with pytest.raises(Interrupted):
            await orch.install_service(make_archive(tmp_path, version="2.0.0"))
        set_crash_hook(None)
        assert (await orch.get_service_info("example_service"))["version"] == "2.0.0"
    async with Orchestrator(home) as orch:
        info = await orch.get_service_info("example_service")
        assert info["version"] == "2.0.0"
        assert (home / "services" / "example_service" / "current").resolve() == Path(info["directory"])


@pytest.mark.parametrize("step", ["store.rollback.before_commit", "store.uninstall.before_commit"])
async def test_rollback_and_uninstall_interrupted_before_commit_change_nothing(
    step: str, home: Path, tmp_path: Path
) -> None:
    # nothing runs: a stop before the store's step would change the running state, not the store
    stopped = OrchestratorConfig(runtime=RuntimeSettings(auto_start=False))
    async with Orchestrator(home, config=stopped) as orch:
        await orch.install_service(make_archive(tmp_path, version="1.0.0"))
        await orch.install_service(make_archive(tmp_path, version="1.1.0"))
        before = await orch.list_services()
        digest = tree_digest(home / "services")
        operation = orch.rollback_service if "rollback" in step else orch.uninstall_service
        _raise_at(step)
        with pytest.raises(Interrupted):
            await operation("example_service")
        set_crash_hook(None)
        assert await orch.list_services() == before
        assert tree_digest(home / "services") == digest


_DRIVER = """
import sys, trio
from pathlib import Path
from p2p_orchestrator import Orchestrator

async def main(home, archive, op):
    async with Orchestrator(home) as orch:
        if op == "install":
            await orch.install_service(Path(archive))
        elif op == "rollback":
            await orch.rollback_service("example_service")
        elif op == "uninstall":
            await orch.uninstall_service("example_service")

trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
"""

KILL_POINTS = [
    ("install", "store.stage.done"),
    ("install", "store.install.after_move"),
    ("install", "store.install.before_commit"),
    ("install", "store.install.after_commit"),
    ("rollback", "store.rollback.before_commit"),
    ("uninstall", "store.uninstall.after_commit"),
]


@pytest.mark.parametrize(("op", "point"), KILL_POINTS)
async def test_sigkill_at_each_step_then_restart_is_consistent(
    op: str, point: str, home: Path, tmp_path: Path
) -> None:
    async with Orchestrator(home) as orch:
        v1 = await orch.install_service(make_archive(tmp_path, version="1.0.0"))
        if op != "install":
            await orch.install_service(make_archive(tmp_path, version="1.1.0"))
    new_archive = tmp_path / "new.tar.gz"
    new_archive.write_bytes(make_archive(tmp_path, version="2.0.0"))
    env = {**os.environ, CRASHPOINT_ENV: point, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(home), str(new_archive), op],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    async with Orchestrator(home) as orch:
        listing = await orch.list_services()
        assert _debris(home) == []
        if op == "uninstall":
            assert listing["total_installed"] == 0
            assert list((home / "services").iterdir()) == []
            return
        info = await orch.get_service_info("example_service")
        expected = {
            "store.stage.done": "1.0.0",
            "store.install.after_move": "1.0.0",
            "store.install.before_commit": "1.0.0",
            "store.install.after_commit": "2.0.0",
            "store.rollback.before_commit": "1.1.0",
        }[point]
        assert info["version"] == expected
        assert info["directory_exists"] is True
        # every version directory on disk is one the store knows
        on_disk = {p.name for p in (home / "services" / "example_service" / "versions").iterdir()}
        assert on_disk == {
            Path(orch.store.version_dir(v).name).name for v in orch.store.get("example_service").versions
        }
        assert len(list((home / "archives").iterdir())) == len(
            {v.archive_hash for v in orch.store.get("example_service").versions}
        )
        assert v1["archive_hash"]
