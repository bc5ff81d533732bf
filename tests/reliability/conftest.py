"""Fixtures of the reliability suites: nothing may outlive a test, and a small tmpfs when wanted."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.procs import (
    descendants,
    listening_sockets,
    mounts,
    namespaces,
    processes_working_under,
    wait_gone,
)


@pytest.fixture(autouse=True)
def _nothing_left_behind(tmp_path: Path) -> Iterator[None]:
    """No process, mount, namespace or listening host outlives a test.

    Processes: every descendant of this process, and every process working
    under the test's directory (a service whose killed node left it to init).
    Killed processes vanish asynchronously, so they get a few seconds.
    Mounts: none under the test's directory.  Namespaces: this process is in
    the ones it started in, and so is every process it leaves (none).  Other
    work on the machine (the swarm testbed's network namespaces) is not ours
    to judge, so machine-wide lists are not compared.
    """
    before_children, before_ns, before_listening = descendants(), namespaces(), listening_sockets()
    yield
    left = wait_gone((descendants() - before_children) | processes_working_under(tmp_path), limit=5.0)
    assert not left, f"test left processes behind: {sorted(left)}"
    ours = [point for point in mounts() if Path(point).is_relative_to(tmp_path)]
    assert not ours, f"test left mounts behind: {ours}"
    assert namespaces() == before_ns, "this process was moved into other namespaces"
    still = listening_sockets() - before_listening
    assert not still, f"test left {len(still)} host(s) listening: {sorted(still)}"


def _unmount(path: Path) -> None:
    """Unmount ``path``; lazily if something still holds it (it must never stay mounted)."""
    done = subprocess.run(["umount", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=True)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An empty 8 MiB tmpfs under the test's directory, unmounted after the test whatever happens.

    Skipped (with the reason) where this process may not mount filesystems.
    """
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        _unmount(mount_point)
