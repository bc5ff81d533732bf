"""``replicas`` through the console script, on node processes: a SIGKILLed holder is replaced."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.cli.support import FAST_CONFIG, NodeProcess
from tests.cli.test_cli_peers import wait_connected
from tests.helpers import EXAMPLE

NAME = "example_service"


def running(nodes: list[NodeProcess]) -> list[str]:
    return sorted(node.peer_id for node in nodes if node.ok("info", NAME)["running"])


def until_running(nodes: list[NodeProcess], count: int, within: float) -> float:
    started = time.monotonic()
    while len(running(nodes)) != count:
        assert time.monotonic() - started < within, f"not {count} copies within {within} s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_sigkilled_holder_is_replaced_and_its_return_settles_the_count(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    first = nodes("n0", config=FAST_CONFIG)
    second = nodes("n1", "--bootstrap", first.address, config=FAST_CONFIG)
    third = nodes("n2", "--bootstrap", first.address, "--bootstrap", second.address, config=FAST_CONFIG)
    others = [second, third]
    fleet = [first, *others]
    wait_connected(first, second.peer_id)
    wait_connected(first, third.peer_id)
    wait_connected(second, third.peer_id)  # a mesh: every node sees every other
    for node in fleet:
        for other in fleet:
            if other is not node:
                node.ok("trust", other.peer_id, "--role", "admin")
    archive = tmp_path / f"{NAME}.tar.gz"
    first.ok("pack", str(EXAMPLE), "-o", str(archive))
    for node in fleet:
        node.ok("install", str(archive))

    placed = first.ok("replicas", NAME, "1")
    assert placed["rule"]["count"] == 1
    until_running(fleet, 1, within=20)
    holder_id = running(fleet)[0]
    assert others[1].ok("replicas", NAME)["desired"] == [holder_id]
    holder = next(node for node in fleet if node.peer_id == holder_id)
    survivors = [node for node in fleet if node is not holder]

    holder.proc.kill()  # SIGKILL: its connections close, its service dies with it (PR_SET_PDEATHSIG)
    holder.proc.wait()
    replaced = until_running(survivors, 1, within=10)
    print(f"replaced in {replaced:.1f} s")

    name = holder.home.name
    back = nodes(
        name, "--bootstrap", survivors[0].address, "--bootstrap", survivors[1].address, config=FAST_CONFIG
    )
    assert back.peer_id == holder_id
    fleet = [*survivors, back]
    deadline = time.monotonic() + 30
    while running(fleet) != [holder_id]:  # it runs its copy again, the replacement stops its own
        assert time.monotonic() < deadline, running(fleet)
        time.sleep(0.1)
    shown = back.cli("replicas", NAME)
    assert shown.code == 0 and "1 cop(ies)" in shown.stdout, str(shown)
