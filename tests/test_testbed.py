"""The network-namespace testbed (scripts/testbed.py) and the BitTorrent baseline on it (issue 6).

Everything here needs root, iproute2 and kernel support; without them the tests skip with the
testbed's own reason.  The shaping test checks a property of the testbed (about 20 Mbit/s and
10 ms round trips), loosely, not a timing of the project's code.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
TESTBED = SCRIPTS / "testbed.py"


@pytest.fixture(scope="module")
def testbed() -> Iterator[ModuleType]:
    """scripts/testbed.py, imported (skips the module's tests when a testbed cannot run here)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        module = importlib.import_module("testbed")
        reason = module.unavailable_reason()
        if reason is not None:
            pytest.skip(f"the testbed cannot run here: {reason}")
        yield module
    finally:
        sys.path.remove(str(SCRIPTS))


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip() for line in out.splitlines()}


def _assert_gone(prefix: str, timeout: float = 0.0) -> None:
    deadline = time.monotonic() + timeout
    while {name for name in _netns() if name.startswith(prefix)} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not {name for name in _netns() if name.startswith(prefix)}


_ECHO_SERVER = textwrap.dedent("""
    import socket, sys
    with socket.create_server((sys.argv[1], 7000)) as server:
        print("listening", flush=True)
        for _ in range(int(sys.argv[2])):
            conn, peer = server.accept()
            with conn:
                conn.sendall(conn.recv(100) + b" from " + sys.argv[1].encode())
""")

_ECHO_CLIENT = textwrap.dedent("""
    import json, socket, sys
    answers = []
    for address in sys.argv[1:]:
        with socket.create_connection((address, 7000), timeout=10) as conn:
            conn.sendall(b"hello")
            answers.append(conn.recv(100).decode())
    print(json.dumps(answers))
""")


def _mesh(bed: object, count: int) -> None:
    """Every host answers every other host over TCP."""
    servers = []
    for i in range(count):
        server = bed.run(  # type: ignore[attr-defined]
            i, [sys.executable, "-c", _ECHO_SERVER, bed.address(i), str(count - 1)], stdout=subprocess.PIPE
        )
        assert server.stdout.readline().strip() == b"listening"
        servers.append(server)
    for i in range(count):
        others = [bed.address(j) for j in range(count) if j != i]  # type: ignore[attr-defined]
        client = bed.run(i, [sys.executable, "-c", _ECHO_CLIENT, *others], stdout=subprocess.PIPE)  # type: ignore[attr-defined]
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 0
        assert json.loads(out) == [f"hello from {address}" for address in others]
    for server in servers:
        assert server.wait(timeout=10) == 0
        server.stdout.close()


def test_two_hosts_talk_tcp_and_nothing_is_left(testbed: ModuleType) -> None:
    links_before = _root_links()
    with testbed.Testbed(2) as bed:
        made = {name for name in _netns() if name.startswith(bed.prefix)}
        assert made == {bed.switch, *(host.netns for host in bed.hosts)}
        assert [host.address for host in bed.hosts] == ["10.213.0.1", "10.213.0.2"]
        _mesh(bed, 2)
        sleeper = bed.run(1, ["sleep", "60"])
        prefix = bed.prefix
    assert sleeper.returncode is not None  # stopped by the teardown
    _assert_gone(prefix)
    assert _root_links() == links_before  # nothing was ever made in the root namespace


def test_four_hosts_full_mesh(testbed: ModuleType) -> None:
    with testbed.Testbed(4) as bed:
        _mesh(bed, 4)
        prefix = bed.prefix
    _assert_gone(prefix)


def test_shaping_is_about_the_configured_rate_and_delay(testbed: ModuleType) -> None:
    with testbed.Testbed(2, rate_mbit=20.0, delay_ms=5.0) as bed:
        figures = testbed.measure_shaping(bed, nbytes=3 << 20, connects=10)
        stats = bed.delay_stats()
    assert 0.5 * 20 <= figures.throughput_mbit <= 1.3 * 20, figures
    # The delay is a floor (minus timer slack); a loaded 2-core machine only adds to it.
    assert 0.8 * 10 <= figures.rtt_ms <= 3 * 10, figures
    if figures.delay_backend == "userspace":
        assert stats is not None and stats["frames"] > 2000 and stats["write_errors"] == 0


def test_an_exception_inside_the_block_still_removes_everything(testbed: ModuleType) -> None:
    made: dict[str, Any] = {}

    def fail_inside() -> None:
        with testbed.Testbed(2) as bed:
            made["prefix"] = bed.prefix
            made["sleeper"] = bed.run(0, ["sleep", "60"])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert made["sleeper"].returncode is not None
    _assert_gone(made["prefix"])


def test_the_keeper_removes_the_testbed_when_its_owner_is_killed(testbed: ModuleType) -> None:
    owner_code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(SCRIPTS)!r})
        from testbed import Testbed
        bed = Testbed(2)
        bed.start()
        bed.run(1, ["sleep", "60"])
        print(bed.prefix, flush=True)
        time.sleep(60)
    """)
    owner = subprocess.Popen([sys.executable, "-c", owner_code], stdout=subprocess.PIPE, text=True)
    try:
        prefix = owner.stdout.readline().strip()
        assert prefix.startswith(testbed.PREFIX)
        assert any(name.startswith(prefix) for name in _netns())
    finally:
        owner.kill()  # no chance to clean up: the keeper must
        owner.wait()
        owner.stdout.close()
    _assert_gone(prefix, timeout=15)


def test_cli_up_run_and_sigterm(testbed: ModuleType) -> None:
    up = subprocess.Popen(
        [sys.executable, str(TESTBED), "up", "2"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        lines = []
        while not (line := up.stdout.readline()).startswith("testbed up"):
            assert line, "testbed.py up ended early"
            lines.append(line)
        described = json.loads("".join(lines))
        prefix = described["prefix"]
        shown = subprocess.run(
            [sys.executable, str(TESTBED), "run", "--prefix", prefix, "1", "ip", "-o", "-4", "addr"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert "10.213.0.2/24" in shown.stdout
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
        up.stdout.close()
    _assert_gone(prefix)


def test_down_all_removes_namespaces_of_dead_owners(testbed: ModuleType) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    name = f"{testbed.PREFIX}{gone.pid}-0-0"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in testbed.leftovers()
        mine = f"{testbed.PREFIX}{os.getpid()}-999-0"  # a live owner: kept
        subprocess.run(["ip", "netns", "add", mine], check=True)
        try:
            down = subprocess.run(
                [sys.executable, str(TESTBED), "down", "--all"], capture_output=True, text=True, check=True
            )
            assert name in json.loads(down.stdout)["removed"]
            assert mine in _netns()
        finally:
            subprocess.run(["ip", "netns", "delete", mine], check=True)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
    assert name not in _netns()


@pytest.fixture
def bittorrent(testbed: ModuleType) -> Iterator[ModuleType]:
    """benchlib.bittorrent (skips without libtorrent for /usr/bin/python3)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        module = importlib.import_module("benchlib.bittorrent")
        reason = module.unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
        yield module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_bittorrent_baseline_two_leechers(bittorrent: ModuleType, tmp_path: Path) -> None:
    size = 1 << 20
    before = _netns()
    samples, extra = bittorrent.measure(2, size, tmp_path / "bt", repetitions=1, warmups=0)
    assert len(samples) == 1
    assert extra["all_verified"] is True
    assert len(extra["leecher_seconds_last_run"]) == 2
    # No leecher can beat its 20 Mbit/s download link; the seeder sends at least one copy.
    assert samples[0] >= 0.8 * extra["one_link_seconds"]
    assert size <= extra["origin_upload_bytes"] <= 2.5 * size
    assert _netns() == before


async def test_bittorrent_hook_leaves_big_swarms_to_the_full_run(tmp_path: Path) -> None:
    """The registration hook's availability check: no N > 4 in --quick (no root needed)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        bittorrent = importlib.import_module("benchlib.bittorrent")
        model = importlib.import_module("benchlib.model")
    finally:
        sys.path.remove(str(SCRIPTS))
    big = bittorrent.baseline(16)
    assert big.tools is not None
    reason = await big.tools(model.Context(quick=True, workdir=tmp_path))
    assert reason is not None and "--quick" in reason
