"""``publish`` and ``updates`` through the console script: a follower node updates itself."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.cli.support import FAST_CONFIG, run_cli
from tests.cli.test_cli_peers import wait_connected
from tests.helpers import EXAMPLE

NAME = "example_service"


def test_a_published_release_is_installed_by_the_node_that_follows_it(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    key = tmp_path / "publisher.key"
    made = run_cli("keygen", "-o", str(key), "--json")
    assert made.code == 0, str(made)
    public_key = made.json()["public_key"]
    trusting = FAST_CONFIG + f'\n[publishers.ci]\npublic_key = "{public_key}"\nservices = ["{NAME}"]\n'
    follower_config = trusting + f'\n[updates]\nfollow = ["{NAME}"]\ncheck_interval = 3600\n'
    publisher = nodes("publisher", config=trusting)  # it verifies what it installs, its own too
    follower = nodes("follower", "--bootstrap", publisher.address, config=follower_config)
    wait_connected(publisher, follower.peer_id)
    follower.ok("trust", publisher.peer_id, "--role", "reader")  # it may announce there
    publisher.ok("trust", follower.peer_id, "--role", "reader")  # and the follower may fetch

    archive = tmp_path / f"{NAME}.tar.gz"
    publisher.ok("pack", str(EXAMPLE), "-o", str(archive))
    assert run_cli("sign", str(archive), "--key", str(key), "-o", f"{archive}.release").code == 0

    published = publisher.ok("publish", str(archive), "--release", f"{archive}.release")
    assert published["service_name"] == NAME
    assert list(published["announced"]) == [follower.peer_id]
    assert published["announced"][follower.peer_id]["reason"] in (
        "accepted",
        "known",
    )  # (known: it asked first)

    end = time.monotonic() + 30
    while (entry := follower.ok("updates")["services"][NAME])["last_attempt"] is None:  # installed, started
        assert time.monotonic() < end, entry
    assert entry["newest_version"] == entry["current_version"]
    assert entry["from_peer"] == publisher.peer_id
    assert entry["last_attempt"]["outcome"] == "succeeded"  # a first install has no trial
    assert follower.ok("info", NAME)["archive_hash"] == published["archive_hash"]

    shown = follower.cli("updates")
    assert shown.code == 0, str(shown)
    assert f"{NAME}: current {entry['current_version']}" in shown.stdout
    assert f"last attempt {entry['current_version']} succeeded" in shown.stdout
