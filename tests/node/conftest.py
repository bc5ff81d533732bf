from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_LISTEN = "0A"  # TCP state in /proc/net/tcp


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.add(int(entry.name))
    return found


def _listening() -> set[str]:
    """Local addresses of this process's listening TCP sockets."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[3] == _LISTEN:
                found.add(fields[1])
    return found


@pytest.fixture(autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """No child process and no listening host outlives a test.

    (Sockets of closed connections are not counted: py-libp2p leaves some to the
    garbage collector, and pytest's log capture keeps them referenced.)
    """
    children, listening = _children(), _listening()
    yield
    left = _children() - children
    assert not left, f"test left child processes behind: {sorted(left)}"
    still = _listening() - listening
    assert not still, f"test left {len(still)} host(s) listening: {sorted(still)}"
