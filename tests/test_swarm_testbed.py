"""A swarm distribution to 4 hosts of the network-namespace testbed (issue 6), one node process each.

It needs root, iproute2 and kernel support (``scripts/testbed.py``); without them it skips with the
testbed's own reason.  It checks what the swarm does -- every target installs the archive, gets
most of it from the other targets, and the origin sends it about once -- not how fast: the
figures are ``scripts/bench.py``'s ``swarm_n*``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def project_swarm() -> Iterator[ModuleType]:
    """``benchlib.project_swarm``, imported (skips when a testbed cannot run here)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        reason = importlib.import_module("testbed").unavailable_reason()
        if reason is not None:
            pytest.skip(f"the testbed cannot run here: {reason}")
        yield importlib.import_module("benchlib.project_swarm")
    finally:
        sys.path.remove(str(SCRIPTS))


def test_a_swarm_of_four_testbed_hosts_feeds_itself(project_swarm: ModuleType, tmp_path: Path) -> None:
    seconds, extra = project_swarm.measure(4, 4 << 20, tmp_path, repetitions=1, warmups=0, push_repetitions=0)
    assert len(seconds) == 1  # measure() raises unless every target installed the archive
    assert extra["origin_upload_over_archive"] <= 1.5  # about once, not four times
    assert extra["from_peers_over_archive"] >= 2.0  # each target got most of it from the others
    assert extra["testbed"]["rate_mbit"] == 20.0
