"""`make demo`: three nodes on loopback, one service distributed to all of them and called across.

Each step prints the command a user would type, then runs exactly that command
(the real console script) in a temporary directory holding the three node homes
(node1, node2, node3).  The nodes run in the background as separate processes;
everything this script starts is stopped when it ends, also on failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("p2p-orchestrator")
EXAMPLE = REPO / "examples" / "example_service"
START_DEADLINE = 60.0
_PR_SET_PDEATHSIG = 1


class DemoFailed(Exception):
    """A step did not do what the demo expects."""


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    peer_id: str = ""
    address: str = ""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(args: list[str], background: bool = False) -> None:
    print(f"$ p2p-orchestrator {shlex.join(args)}{' &' if background else ''}", flush=True)


def run(args: list[str], cwd: Path, *, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Show and run one command; its output goes to the terminal unless ``capture``."""
    show(args)
    done = subprocess.run(
        [str(CLI), *args], cwd=cwd, text=True, capture_output=capture, check=False, timeout=120
    )
    if done.returncode != 0:
        detail = (done.stderr or "").strip() if capture else ""
        raise DemoFailed(f"`p2p-orchestrator {shlex.join(args)}` exited with {done.returncode} {detail}")
    return done


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM if the demo dies (even by SIGKILL), so no node outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_node(name: str, cwd: Path, bootstrap: str | None) -> Node:
    args = ["--home", name, "node", "--listen", "/ip4/127.0.0.1/tcp/0", "--json"]
    if bootstrap:
        args += ["--bootstrap", bootstrap]
    show(args, background=True)
    log = open(cwd / f"{name}.log", "wb")  # noqa: SIM115 -- the child writes to it
    proc = subprocess.Popen(
        [str(CLI), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=log,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 -- the demo runs no threads
    )
    log.close()
    return Node(name, proc)


def wait_announced(node: Node, deadline: float) -> None:
    """Read the JSON line a node prints once its control socket is up (bounded, no sleeping)."""
    assert node.proc.stdout is not None
    fd, buffer = node.proc.stdout.fileno(), b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoFailed(f"{node.name} did not start within {START_DEADLINE:g} s")
            if not selector.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise DemoFailed(f"{node.name} exited with {node.proc.wait()} while starting")
            buffer += chunk
    info: dict[str, Any] = json.loads(buffer.split(b"\n", 1)[0])
    node.peer_id, node.address = info["peer_id"], info["listen_addrs"][0]
    print(f"   {node.name}: peer ID {node.peer_id} (pid {node.proc.pid})", flush=True)


def stop_nodes(nodes: list[Node], cwd: Path, failed: bool) -> None:
    """SIGTERM every node, wait for each (SIGKILL after 20 s); on failure show their last log lines."""
    if nodes:
        say("Stop the nodes (Ctrl-C or SIGTERM: each stops its services, then itself)")
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        try:
            node.proc.wait(20)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()
        if node.proc.stdout is not None:
            node.proc.stdout.close()
        print(f"   {node.name} stopped (exit {node.proc.returncode})", flush=True)
        if failed and (log := cwd / f"{node.name}.log").exists():
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"   --- last lines of {node.name}'s log ---", *tail, sep="\n   ", file=sys.stderr)


def demo(cwd: Path, nodes: list[Node]) -> None:
    say("Start three nodes in the background (node2 and node3 bootstrap from node1)")
    deadline = time.monotonic() + START_DEADLINE
    nodes.append(start_node("node1", cwd, None))
    wait_announced(nodes[0], deadline)
    nodes += [start_node(name, cwd, nodes[0].address) for name in ("node2", "node3")]
    for node in nodes[1:]:
        wait_announced(node, deadline)
    first, third = nodes[0], nodes[2]

    say("Make them trust each other (every node gives the other two the admin role)")
    for node in nodes:
        for other in nodes:
            if other is not node:
                run(["--home", node.name, "trust", other.peer_id, "--role", "admin"], cwd)

    say("Pack the example service and install it on node1")
    run(["pack", str(EXAMPLE), "-o", "example_service.tar.gz"], cwd)
    run(["--home", first.name, "install", "example_service.tar.gz"], cwd)
    run(["--home", first.name, "start", "example_service"], cwd)

    say("Distribute it to the other two, by peer ID, and start it there")
    run(
        ["--home", first.name, "distribute", "example_service", *(n.peer_id for n in nodes[1:]), "--start"],
        cwd,
    )

    say("Call its method on node3, from node1")
    done = run(
        [
            "--home",
            first.name,
            "call",
            "example_service/greet",
            "--params",
            '{"name": "demo"}',
            "--peer",
            third.peer_id,
        ],
        cwd,
        capture=True,
    )
    print(done.stdout, end="")
    if "demo!" not in done.stdout:
        raise DemoFailed(f"unexpected answer: {done.stdout}")

    say("What runs where")
    run(["--home", first.name, "list"], cwd)
    run(["--home", first.name, "list", "--peer", third.peer_id], cwd)
    run(["--home", first.name, "peers"], cwd)
    run(["--home", first.name, "status"], cwd)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the demo stops it the way Ctrl-C does: through the cleanup."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    started = time.monotonic()
    nodes: list[Node] = []
    failed = True
    with tempfile.TemporaryDirectory(prefix="p2p-demo-") as tmp, sigterm_as_interrupt():
        cwd = Path(tmp)
        print(f"(working in {cwd}: the node homes are node1, node2 and node3 there)")
        try:
            demo(cwd, nodes)
            failed = False
        except DemoFailed as exc:
            print(f"\ndemo failed: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
        finally:
            stop_nodes(nodes, cwd, failed)
    print(f"\n{'demo failed' if failed else 'demo done'} in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
