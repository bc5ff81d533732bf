"""The node process: its control socket (mode, stale and foreign files, long paths), following, shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.cli.support import CLI, read_line, run_cli, start_node
from tests.helpers import EXAMPLE


def _follow(node_home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(CLI), "--home", str(node_home), *args], stdout=subprocess.PIPE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_socket_follow_and_clean_shutdown(nodes: NodeFactory, tmp_path: Path) -> None:
    node = nodes("home")
    path = node.home / "control.sock"
    mode = path.lstat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert node.info["control_socket"] == str(path)

    # Each follower shows some history first (--limit, --lines), so whether it connects before
    # or after the service starts, the start is the first thing it prints.
    events = _follow(node.home, "events", "--follow", "--json", "--type", "service_started")
    try:
        node.ok("pack", str(EXAMPLE), "-o", str(tmp_path / "svc.tar.gz"))
        node.ok("install", str(tmp_path / "svc.tar.gz"))
        logs = _follow(node.home, "logs", "example_service", "--follow", "--lines", "10")
        try:
            started = node.ok("start", "example_service")
            assert started["success"] is True
            event = json.loads(read_line(events, 30))
            assert event["type"] == "service_started" and event["service"] == "example_service"
            assert b"starting example_service" in read_line(logs, 30)
        finally:
            logs.send_signal(signal.SIGINT)
            assert logs.wait(10) == 0  # Ctrl-C is how following ends
            assert logs.stdout is not None
            logs.stdout.close()
    finally:
        events.send_signal(signal.SIGINT)
        assert events.wait(10) == 0
        assert events.stdout is not None
        events.stdout.close()

    service_pid = node.ok("info", "example_service")["pid"]
    assert _alive(service_pid)
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(30) == 0
    assert not path.exists()
    end = time.monotonic() + 10
    while _alive(service_pid):
        assert time.monotonic() < end, "the service outlived its node"
    assert "Received SIGINT" in node.log()
    assert run_cli("list", home=node.home).stderr.startswith("error [node_not_running]")


def test_stale_socket_is_replaced_and_a_second_node_refused(nodes: NodeFactory, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(home / "control.sock"))
    stale.close()  # a socket file nobody answers on: left by a killed node
    node = nodes("home")
    assert node.ok("list")["total_installed"] == 0

    second = run_cli("node", "--listen", "/ip4/127.0.0.1/tcp/0", home=home, timeout=60)
    assert second.code == 1, str(second)
    assert second.stderr.endswith(
        f"error [control_socket_in_use]: a node is already running for this home: it answers on "
        f"{home / 'control.sock'}\n"
    ), str(second)
    assert node.ok("list")["total_installed"] == 0  # the first one is untouched


def test_a_foreign_file_at_the_socket_path_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "control.sock").write_text("not mine")
    result = run_cli("node", "--listen", "/ip4/127.0.0.1/tcp/0", home=home, timeout=60)
    assert result.code == 1, str(result)
    assert result.stderr.strip().endswith(
        f"error [control_socket_blocked]: {home / 'control.sock'} exists and is not a socket; "
        "move it away to let the node create its control socket"
    )
    assert (home / "control.sock").read_text() == "not mine"


def test_a_home_path_longer_than_a_socket_address(tmp_path: Path) -> None:
    home = tmp_path / ("deep_" * 20) / "home"
    assert len(str(home / "control.sock")) > 107
    node = start_node(home)
    try:
        assert node.ok("id")["peer_id"] == node.peer_id
    finally:
        assert node.stop() == 0
    assert not (home / "control.sock").exists()


def test_a_cli_call_loads_neither_trio_nor_libp2p(nodes: NodeFactory) -> None:
    node = nodes("home")
    python = CLI.with_name("python")
    done = subprocess.run(
        [
            str(python),
            "-X",
            "importtime",
            "-m",
            "p2p_orchestrator.cli",
            "--home",
            str(node.home),
            "list",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert "p2p_orchestrator" in modules
    assert not modules & {"trio", "libp2p", "multiaddr", "rich"}, sorted(modules)
    assert json.loads(done.stdout)["total_installed"] == 0
