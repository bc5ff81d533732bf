"""A partition heals back to COUNT copies: three node processes on the network-namespace testbed.

The holder of the only copy is cut off (its link goes down): the other two, not hearing from it,
start a copy on their side (a partition may run more than COUNT, never fewer than each side's
live nodes allow).  When the link comes back they see each other again and settle at exactly one.
Needs root, iproute2 and network namespaces (``scripts/testbed.py``); skips with the testbed's
reason otherwise.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.cli.support import CLI, FAST_CONFIG, run_cli
from tests.helpers import EXAMPLE

SCRIPTS = Path(__file__).resolve().parent.parent.parent / "scripts"
NAME = "example_service"


@pytest.fixture(scope="module")
def testbed() -> Iterator[ModuleType]:
    sys.path.insert(0, str(SCRIPTS))
    try:
        module = importlib.import_module("testbed")
        reason = module.unavailable_reason()
        if reason is not None:
            pytest.skip(f"the testbed cannot run here: {reason}")
        yield module
    finally:
        sys.path.remove(str(SCRIPTS))


def ok(home: Path, *args: str) -> Any:
    result = run_cli(*args, "--json", home=home)
    assert result.code == 0, str(result)
    return result.json()


def running(homes: list[Path]) -> list[int]:
    return [i for i, home in enumerate(homes) if ok(home, "info", NAME)["running"]]


def until(check: Any, within: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"{what}: not within {within} s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_partition_runs_a_copy_on_each_side_and_heals_to_count(testbed: ModuleType, tmp_path: Path) -> None:
    with testbed.Testbed(3) as bed:
        homes = [tmp_path / f"n{i}" for i in range(3)]
        infos: list[dict[str, Any]] = []
        for i, home in enumerate(homes):
            home.mkdir()
            (home / "config.toml").write_text(FAST_CONFIG)
            bootstrap = [arg for info in infos for arg in ("--bootstrap", info["listen_addrs"][0])]
            proc = bed.run(
                i,
                [
                    str(CLI),
                    "--home",
                    str(home),
                    "node",
                    "--listen",
                    f"/ip4/{bed.address(i)}/tcp/4001",
                    "--json",
                    *bootstrap,
                ],
                stdout=subprocess.PIPE,
                stderr=open(tmp_path / f"n{i}.stderr", "wb"),  # noqa: SIM115 -- the child keeps it
            )
            assert proc.stdout is not None
            infos.append(json.loads(proc.stdout.readline()))
        ids = [info["peer_id"] for info in infos]
        for i, home in enumerate(homes):
            for j in range(3):
                if i != j:
                    ok(home, "trust", ids[j], "--role", "admin")
        until(
            lambda: all(sum(p["connected"] for p in ok(h, "peers")["peers"]) == 2 for h in homes),
            30,
            "a mesh",
        )
        archive = tmp_path / f"{NAME}.tar.gz"
        ok(homes[0], "pack", str(EXAMPLE), "-o", str(archive))
        for home in homes:
            ok(home, "install", str(archive))
        ok(homes[0], "replicas", NAME, "1")
        until(lambda: len(running(homes)) == 1, 30, "one copy")
        [holder] = running(homes)
        rest = [i for i in range(3) if i != holder]

        host = bed.hosts[holder]
        subprocess.run(["ip", "-n", host.netns, "link", "set", host.interface, "down"], check=True)
        split = until(
            lambda: len([i for i in running(homes) if i in rest]) == 1, 30, "a copy on the other side"
        )
        assert holder in running(homes)  # its side still runs its copy: more than COUNT during a partition

        subprocess.run(["ip", "-n", host.netns, "link", "set", host.interface, "up"], check=True)
        healed = until(lambda: len(running(homes)) == 1, 60, "healed to one copy")
        time.sleep(3)
        assert len(running(homes)) == 1
        print(f"copy on the other side {split:.1f} s after the cut; one copy {healed:.1f} s after the heal")
