from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.procs import listening_sockets as _listening


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
