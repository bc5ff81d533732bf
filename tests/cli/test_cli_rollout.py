"""``rollout`` through the console script, between node processes: waves, the health gate, revert."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.cli.support import FAST_CONFIG
from tests.cli.test_cli_peers import wait_connected
from tests.helpers import EXAMPLE

NAME = "example_service"


def _version(node: object, path: Path, version: str) -> Path:
    """An archive of the example service at ``version`` (packed by ``node``'s CLI)."""
    source = path / f"src-{version}"
    source.mkdir(parents=True)
    shutil.copytree(EXAMPLE, source / NAME)
    manifest = json.loads((source / NAME / "manifest.json").read_text())
    manifest["version"] = version
    (source / NAME / "manifest.json").write_text(json.dumps(manifest))
    archive = path / f"{NAME}-{version}.tar.gz"
    node.ok("pack", str(source / NAME), "-o", str(archive))  # type: ignore[attr-defined]
    return archive


def test_a_rollout_upgrades_the_targets_and_a_failing_one_exits_1_with_them_reverted(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    coordinator = nodes("coordinator", config=FAST_CONFIG)
    targets = [nodes(f"t{i}", "--bootstrap", coordinator.address, config=FAST_CONFIG) for i in range(2)]
    v1 = _version(coordinator, tmp_path, "1.0.0")
    for target in targets:
        wait_connected(coordinator, target.peer_id)
        target.ok("trust", coordinator.peer_id, "--role", "admin")
        target.ok("install", str(v1))
        target.ok("start", NAME)
    ids = [target.peer_id for target in targets]

    v2 = _version(coordinator, tmp_path, "2.0.0")
    shown = coordinator.cli("rollout", str(v2), *ids, "--canary", "1", "--health-wait", "0.5")
    assert shown.code == 0, str(shown)
    assert "-- succeeded" in shown.stdout and "2 healthy" in shown.stdout
    for target in targets:
        assert target.ok("info", NAME)["version"] == "2.0.0"

    broken = tmp_path / "broken"
    broken.mkdir()
    v3 = _version(coordinator, broken, "3.0.0")
    main = broken / f"src-3.0.0/{NAME}/main.py"  # repacked below with a main.py that cannot import
    main.write_text("raise RuntimeError('3.0.0 is broken')\n")
    coordinator.ok("pack", str(main.parent), "-o", str(v3))
    failed = coordinator.cli("rollout", str(v3), *ids, "--canary", "1", "--health-wait", "0.5", "--json")
    assert failed.code == 1, str(failed)
    account = failed.json()
    assert account["phase"] == "halted"
    assert [account["targets"][peer]["state"] for peer in ids] == ["reverted", "untouched"]
    for target in targets:
        assert target.ok("info", NAME)["version"] == "2.0.0"

    listed = coordinator.ok("rollout", "--status")["rollouts"]
    assert [entry["phase"] for entry in listed] == ["halted", "succeeded"]
