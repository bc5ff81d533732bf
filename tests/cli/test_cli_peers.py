"""Two node processes: trust, ``--peer`` forwarding, and a peer that is refused."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.cli.support import FAST_CONFIG, NodeProcess
from tests.helpers import make_service


def wait_connected(node: NodeProcess, peer_id: str, deadline: float = 20.0) -> dict[str, object]:
    end = time.monotonic() + deadline
    while True:
        peers = {p["peer_id"]: p for p in node.ok("peers")["peers"]}
        if peers.get(peer_id, {}).get("connected"):
            return peers[peer_id]
        assert time.monotonic() < end, f"{peer_id} never connected: {peers}"


def test_peer_calls_are_refused_until_trusted(nodes: NodeFactory, tmp_path: Path) -> None:
    there = nodes("there")
    here = nodes("here", "--bootstrap", there.address)
    peer = wait_connected(here, there.peer_id)
    assert peer["pinned"] is True and peer["role"] is None

    archive = tmp_path / "example_service.tar.gz"
    here.ok("pack", str(make_service(tmp_path / "src")), "-o", str(archive))

    refused = here.cli("list", "--peer", there.peer_id, "--json")
    assert refused.code == 1, str(refused)
    assert refused.stdout == ""
    assert refused.stderr.startswith("error [permission_denied]: "), str(refused)
    assert here.peer_id in refused.stderr
    refused = here.cli("install", str(archive), "--peer", there.peer_id)
    assert refused.code == 1 and "permission_denied" in refused.stderr, str(refused)
    assert there.ok("list")["total_installed"] == 0

    trusted = there.ok("trust", here.peer_id, "--role", "deployer")
    assert trusted == {"peer_id": here.peer_id, "role": "deployer", "previous_role": None}
    installed = here.ok("install", str(archive), "--peer", there.peer_id)
    assert installed["service_name"] == "example_service"
    here.ok("start", "example_service", "--peer", there.peer_id)
    listing = here.ok("list", "--peer", there.peer_id)
    assert listing["total_running"] == 1
    assert here.ok("list")["total_installed"] == 0  # nothing happened here

    answer = here.ok("call", "example_service/greet", "--params", '{"name": "Ada"}', "--peer", there.peer_id)
    assert answer["message"].endswith("Ada!")
    private = here.cli("call", "example_service/stats", "--peer", there.peer_id)
    assert private.code == 1 and private.stderr.startswith("error [method_not_public]"), str(private)
    assert there.ok("call", "example_service/stats")["calls"] == 1  # the local admin may

    exported = here.ok(
        "export", "example_service", "-o", str(tmp_path / "copy.tar.gz"), "--peer", there.peer_id
    )
    assert exported["archive_hash"] == installed["archive_hash"]

    # a reader may read, not deploy
    there.ok("trust", here.peer_id, "--role", "reader")
    assert here.ok("info", "example_service", "--peer", there.peer_id)["running"] is True
    refused = here.cli("stop", "example_service", "--peer", there.peer_id)
    assert refused.code == 1 and "permission_denied" in refused.stderr, str(refused)
    peers = {p["peer_id"]: p for p in there.ok("peers")["peers"]}
    assert peers[here.peer_id]["role"] == "reader"
    remote_logs = here.ok("logs", "example_service", "--peer", there.peer_id)
    assert remote_logs == {
        "service_name": "example_service",
        "lines": there.ok("logs", "example_service")["lines"],
        "truncated": False,
    }
    started = here.ok("events", "--type", "service_started", "--peer", there.peer_id)["events"]
    assert [(e["service"], e["version"]) for e in started] == [("example_service", "1.0.0")]
    shown = here.cli("events", "--peer", there.peer_id)
    assert shown.code == 0 and "service_started" in shown.stdout and "example_service" in shown.stdout, str(
        shown
    )
    follow = here.cli("logs", "example_service", "--follow", "--peer", there.peer_id)
    assert follow.code == 2 and "--follow works on this node only" in follow.stderr, str(follow)


def test_a_peer_named_in_the_peers_table_is_reached_by_its_name(nodes: NodeFactory, tmp_path: Path) -> None:
    there = nodes("there")
    config = FAST_CONFIG + f'\n[peers]\nthere = "{there.peer_id}"\n'
    here = nodes("here", "--bootstrap", there.address, config=config)
    wait_connected(here, there.peer_id)
    there.ok("trust", here.peer_id, "--role", "reader")
    assert here.ok("list", "--peer", "there") == there.ok("list")
    assert here.ok("metrics", "--peer", "there")["services"] == {}
    unknown = here.cli("list", "--peer", "nobody")
    assert unknown.code == 1 and "nobody" in unknown.stderr, str(unknown)
