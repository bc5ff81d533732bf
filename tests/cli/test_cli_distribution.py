"""``distribute`` and ``fetch`` through the console script, across three node processes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.cli.test_cli_peers import wait_connected
from tests.helpers import EXAMPLE

SPEC_KEYS = {"service_name", "total_nodes", "successful_distributions", "failed_distributions", "results"}


def test_distribute_to_a_trusting_and_a_refusing_node_then_fetch(nodes: NodeFactory, tmp_path: Path) -> None:
    origin = nodes("origin")
    trusting = nodes("trusting", "--bootstrap", origin.address)
    refusing = nodes("refusing", "--bootstrap", origin.address)
    for node in (trusting, refusing):
        wait_connected(origin, node.peer_id)
    trusting.ok("trust", origin.peer_id, "--role", "deployer")
    origin.ok("pack", str(EXAMPLE), "-o", str(tmp_path / "example_service.tar.gz"))
    origin.ok("install", str(tmp_path / "example_service.tar.gz"))

    result = origin.cli(
        "distribute", "example_service", trusting.peer_id, refusing.peer_id, "--start", "--json"
    )
    assert result.code == 1, str(result)  # one target failed: the operation did not fully succeed
    assert result.stderr == "error [distribution_failed]: example_service did not reach 1 of 2 node(s)\n"
    shape = json.loads(result.stdout)
    assert shape.keys() == SPEC_KEYS
    assert (shape["total_nodes"], shape["successful_distributions"], shape["failed_distributions"]) == (
        2,
        1,
        1,
    )
    assert shape["results"][trusting.peer_id]["success"] is True
    assert shape["results"][trusting.peer_id]["result"]["service_name"] == "example_service"
    assert shape["results"][refusing.peer_id].keys() == {"success", "error"}
    assert "permission_denied" in shape["results"][refusing.peer_id]["error"]
    assert trusting.ok("list")["total_running"] == 1
    assert refusing.ok("list")["total_installed"] == 0

    forced = origin.cli("distribute", "example_service", trusting.peer_id, "--force")
    assert forced.code == 1 and "may not force a reinstall" in forced.stdout, str(forced)
    trusting.ok("trust", origin.peer_id, "--role", "admin")  # forcing a reinstall there needs admin
    shown = origin.cli("distribute", "example_service", trusting.peer_id, "--force")
    assert shown.code == 0, str(shown)
    assert "1 of 1 node(s) succeeded" in shown.stdout and trusting.peer_id in shown.stdout
    assert "example_service: 1/1 node(s)" in shown.stderr  # the progress bar

    refused = refusing.cli("fetch", "example_service", "--from", origin.peer_id)
    assert refused.code == 1 and "permission_denied" in refused.stderr, str(refused)
    origin.ok("trust", refusing.peer_id, "--role", "reader")
    fetched = refusing.ok("fetch", "example_service", "--from", origin.peer_id)
    assert fetched["fetched_from"] == origin.peer_id
    assert fetched["service_name"] == "example_service"
    assert refusing.ok("info", "example_service")["archive_hash"] == fetched["archive_hash"]
