"""A full disk ends an operation with a clean, typed error; the running version stays up and intact.

The full disk is a real 8 MiB tmpfs (the ``small_tmpfs`` fixture: skipped where
mounting is not permitted, always unmounted) as the node home or as its
staging area, for installs and for receiving a distribution.  The regression tests of the bugs this suite found need no
mount: ``/dev/full``, a staging directory on ``/dev/shm``, sqlite's
``max_page_count`` and a pid-file write that fails stand in for the full disk.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Orchestrator, ServiceInstallationError, ServiceManagementError
from p2p_orchestrator.runtime.pidfiles import PidFiles
from tests.helpers import make_archive
from tests.reliability.consistency import check_store, expected_digest, version_digest
from tests.reliability.procs import descendants
from tests.runtime.support import fast_config, service_archive

NAME = "example_service"
CHATTY = """
class Run(BaseService):
    @service_method(public=True)
    async def spam(self, lines=1000):
        for _ in range(lines):
            print("x" * 999, flush=True)
        return lines
"""


def fill_disk(filler: Path) -> None:
    """Write ``filler`` until the filesystem is full."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 65536)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return
    finally:
        os.close(fd)


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def archives(root: Path) -> dict[str, bytes]:
    """v1 (small), v2 (about 3.4 MiB compressed, 6 MiB unpacked: no room for it on 8 MiB), v3 (small)."""
    big = {"assets/big.txt": os.urandom(3_000_000).hex()}
    return {
        "1.0.0": make_archive(root, version="1.0.0"),
        "2.0.0": make_archive(root, version="2.0.0", files=big),
        "3.0.0": make_archive(root, version="3.0.0"),
    }


def digests_of(found: dict[str, bytes], scratch: Path) -> dict[str, str]:
    return dict(expected_digest(archive, scratch / version) for version, archive in found.items())


async def running_intact(orch: Orchestrator, version: str, pid: int, digest: str) -> None:
    """The service still runs ``version`` in the same process, and its files are untouched."""
    info = await orch.get_service_info(NAME)
    assert (info["version"], info["pid"], info["state"]) == (version, pid, "running")
    assert version_digest(Path(info["directory"])) == digest
    assert await orch.rpc.call(f"{NAME}/example_method") == {"message": "Hello from service!"}


async def test_an_archive_bigger_than_the_free_space(small_tmpfs: Path, tmp_path: Path) -> None:
    """The node home is the full disk: the install fails cleanly, the old version keeps running."""
    found = archives(tmp_path / "src")
    digests = digests_of(found, tmp_path / "trees")
    with trio.fail_after(60):
        async with Orchestrator(small_tmpfs / "home", config=fast_config()) as orch:
            await orch.install_service(found["1.0.0"])
            await orch.start_service(NAME)
            info = await orch.get_service_info(NAME)
            pid, digest = info["pid"], version_digest(Path(info["directory"]))
            free = free_bytes(small_tmpfs)
            with pytest.raises(ServiceInstallationError) as refused:
                await orch.install_service(found["2.0.0"])
            assert refused.value.code == "write_failed"
            await running_intact(orch, "1.0.0", pid, digest)
            check_store(orch, digests)
            assert free_bytes(small_tmpfs) >= free - 256 * 1024  # the partial files are gone
            # the node is not wedged: an archive that fits installs and runs
            upgraded = await orch.install_service(found["3.0.0"])
            assert upgraded["auto_started"] is True
            check_store(orch, digests)


async def test_staging_on_its_own_full_filesystem(small_tmpfs: Path, tmp_path: Path) -> None:
    """``staging/`` is the full disk: big installs fail cleanly, small ones cross to ``services/``."""
    found = archives(tmp_path / "src")
    digests = digests_of(found, tmp_path / "trees")
    home = tmp_path / "home"
    home.mkdir()
    (home / "staging").symlink_to(small_tmpfs)
    with trio.fail_after(60):
        async with Orchestrator(home, config=fast_config()) as orch:
            await orch.install_service(found["1.0.0"])
            await orch.start_service(NAME)
            info = await orch.get_service_info(NAME)
            pid, digest = info["pid"], version_digest(Path(info["directory"]))
            with pytest.raises(ServiceInstallationError) as refused:
                await orch.install_service(found["2.0.0"])
            assert refused.value.code == "write_failed"
            await running_intact(orch, "1.0.0", pid, digest)
            assert list(small_tmpfs.iterdir()) == []
            await orch.install_service(found["3.0.0"])
            assert (await orch.get_service_info(NAME))["version"] == "3.0.0"
            check_store(orch, digests)


async def test_staging_on_another_filesystem_installs(tmp_path: Path) -> None:
    """Regression: with ``staging/`` on another filesystem every install failed with a raw EXDEV.

    ``/dev/shm`` (a tmpfs on Linux) stands in for the operator's separate disk.
    """
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no /dev/shm on another filesystem than the test directory")
    staging = shm / f"p2p-staging-{os.getpid()}-{tmp_path.name}"
    staging.mkdir()
    found = archives(tmp_path / "src")
    try:
        home = tmp_path / "home"
        home.mkdir()
        (home / "staging").symlink_to(staging)
        async with Orchestrator(home, config=fast_config()) as orch:
            await orch.install_service(found["1.0.0"])
            await orch.install_service(found["2.0.0"])
            check_store(orch, digests_of(found, tmp_path / "trees"))
            assert list(staging.iterdir()) == []
    finally:
        shutil.rmtree(staging)


async def test_a_full_disk_loses_service_output_and_keeps_the_node(small_tmpfs: Path, tmp_path: Path) -> None:
    """Every operation on a full disk fails typed (``write_failed``); nothing crashes; all recovers."""
    found = archives(tmp_path / "src")
    with trio.fail_after(60):
        async with Orchestrator(small_tmpfs / "home", config=fast_config()) as orch:
            await orch.install_service(found["1.0.0"])
            await orch.install_service(service_archive(tmp_path / "src", "chatty", CHATTY))
            await orch.start_service(NAME)
            await orch.start_service("chatty")
            filler = small_tmpfs / "filler"
            fill_disk(filler)
            assert await orch.rpc.call("chatty/spam", {"lines": 500}) == 500  # its output is lost
            with pytest.raises(ServiceManagementError) as stop:
                await orch.stop_service("chatty")
            assert stop.value.code == "write_failed"  # it stopped, but cannot record that it should stay so
            children = descendants()
            with pytest.raises(ServiceManagementError) as start:
                await orch.start_service("chatty")
            assert start.value.code == "write_failed"
            assert descendants() == children  # the process it could not record was not left running
            assert (await orch.get_service_info("chatty"))["state"] == "failed"
            with pytest.raises(ServiceInstallationError) as install:
                await orch.install_service(found["3.0.0"])
            assert install.value.code == "write_failed"
            assert await orch.rpc.call(f"{NAME}/example_method") == {"message": "Hello from service!"}

            filler.unlink()  # space again: everything works
            await orch.start_service("chatty")
            assert await orch.rpc.call("chatty/spam", {"lines": 10}) == 10
            await orch.stop_service("chatty")
            await orch.install_service(found["3.0.0"])
            check_store(
                orch,
                digests_of(found, tmp_path / "trees")
                | digests_of(
                    {"chatty": service_archive(tmp_path / "src", "chatty", CHATTY)}, tmp_path / "trees2"
                ),
            )
        log = (small_tmpfs / "home" / "logs" / "chatty.log").read_text()
        assert "x" * 999 in log  # what fitted was kept


async def test_a_database_that_cannot_grow_fails_typed_and_rolls_back(home: Path, tmp_path: Path) -> None:
    """Regression: sqlite's ``database or disk is full`` escaped raw, and the rollback after it failed.

    ``max_page_count`` makes the database refuse to grow, as a full disk does.
    """
    found = archives(tmp_path / "src")
    async with Orchestrator(home, config=fast_config()) as orch:
        await orch.install_service(found["1.0.0"])
        conn = orch.store._db._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        filler = "x" * 8000
        with pytest.raises(ServiceInstallationError) as install:
            # a manifest big enough to need new pages
            await orch.install_service(
                make_archive(tmp_path / "big", version="4.0.0", manifest={"description": filler})
            )
        assert install.value.code == "write_failed"
        assert (await orch.get_service_info(NAME))["version"] == "1.0.0"
        conn.execute("PRAGMA max_page_count = 1073741823")
        # the connection is usable again: no transaction was left open
        await orch.install_service(found["3.0.0"])
        check_store(orch, digests_of(found, tmp_path / "trees"))


async def test_a_pid_file_that_cannot_be_written_fails_the_start(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the raw OSError left the child running unrecorded and the service stuck in ``starting``."""

    def full(self: PidFiles, service: str, pid: int, pgid: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async with Orchestrator(home, config=fast_config()) as orch:
        await orch.install_service(make_archive(tmp_path / "src"))
        children = descendants()
        with monkeypatch.context() as patch:
            patch.setattr(PidFiles, "write", full)
            with pytest.raises(ServiceManagementError) as start:
                await orch.start_service(NAME)
        assert start.value.code == "write_failed"
        forks = orch.supervisor.forks
        assert forks is not None and forks.pid is not None
        assert descendants() == children | {forks.pid}  # the process was stopped; the fork server stays
        assert (await orch.get_service_info(NAME))["state"] == "failed"
        await orch.start_service(NAME)
        assert orch.is_running(NAME)


# -- a distribution to a node whose disk is too small -------------------------------------------


@pytest.mark.parametrize(
    ("blob_bytes", "codes"),
    [
        pytest.param(6_000_000, {"write_failed"}, id="transfer-fits-install-does-not"),
        pytest.param(12_000_000, {"write_failed", "storage_failed"}, id="transfer-does-not-fit"),
    ],
)
@pytest.mark.parametrize("pull", [False, True], ids=["pushed", "fetched"])
async def test_a_distribution_bigger_than_the_free_space(
    small_tmpfs: Path, tmp_path: Path, blob_bytes: int, codes: set[str], pull: bool
) -> None:
    """Regression: the partial transfer of a distribution that failed for lack of space was kept.

    It held 5.9 MB of the 8 MB when the install failed, and every free byte when the chunks did not
    fit, so the node was left on a (nearly) full disk -- whether the archive was pushed to it
    (``distribute_service``) or it pulled it (``fetch_service``).
    """
    from dataclasses import replace

    from p2p_orchestrator import OrchestratorError
    from p2p_orchestrator.archive import pack_service_bytes
    from p2p_orchestrator.config import AccessSettings
    from p2p_orchestrator.node import Node
    from p2p_orchestrator.testing import swarm
    from tests.helpers import make_service
    from tests.node.support import fast_config as node_fast_config

    service = make_service(tmp_path / "src", version="3.0.0")
    (service / "assets" / "blob.bin").write_bytes(os.urandom(blob_bytes))
    big = pack_service_bytes(service)
    v1 = make_archive(tmp_path / "v1")
    with trio.fail_after(60):
        async with swarm(1, tmp_dir=tmp_path / "origin", config=node_fast_config()) as nodes:
            origin = nodes[0]
            origin.transfers.chunk_size = 256 * 1024
            await origin.orchestrator.install_service(big)
            config = replace(node_fast_config(), access=AccessSettings(roles={origin.peer_id: "deployer"}))
            config = replace(config, node=replace(config.node, transfer_attempts=1))
            async with Node.open(small_tmpfs / "home", config=config) as target:
                orch = target.orchestrator
                await orch.install_service(v1)
                await orch.start_service(NAME)
                info = await orch.get_service_info(NAME)
                pid, digest = info["pid"], version_digest(Path(info["directory"]))
                free = free_bytes(small_tmpfs)
                await origin.connect(target.listen_addrs[0])
                if pull:
                    await origin.set_role(target.peer_id, "reader")
                    with pytest.raises(OrchestratorError) as fetched:
                        await orch.fetch_service(NAME, origin.peer_id)
                    error = str(fetched.value)
                else:
                    result = await origin.orchestrator.distribute_service(NAME, [target.peer_id])
                    entry = result["results"][target.peer_id]
                    assert not entry["success"]
                    error = entry["error"]
                assert error.split("]")[0].lstrip("[") in codes, error
                assert "No space left on device" in error
                await running_intact(orch, "1.0.0", pid, digest)
                check_store(orch, dict([expected_digest(v1, tmp_path / "tree")]))
                # no debris: the space the failed transfer took is free again
                assert list((small_tmpfs / "home" / "partial").iterdir()) == []
                assert free_bytes(small_tmpfs) >= free - 256 * 1024
