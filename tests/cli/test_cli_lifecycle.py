"""The life cycle through the real console script against a real node: JSON shapes of the spec."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.cli.support import NodeProcess
from tests.helpers import make_service

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
LISTED = {
    "installed",
    "running",
    "installed_at",
    "archive_hash",
    "manifest",
    "files_count",
    "directory_exists",
}


def test_life_cycle_json_shapes(nodes: NodeFactory, tmp_path: Path) -> None:
    node = nodes("home")
    archive = tmp_path / "example_service.tar.gz"
    packed = node.ok("pack", str(make_service(tmp_path / "src")), "-o", str(archive))
    assert packed["archive_hash"] == hashlib.sha256(archive.read_bytes()).hexdigest()

    installed = node.ok("install", str(archive))
    assert {"success", "service_name", "installed_at", "archive_hash", "auto_started"} <= installed.keys()
    assert installed["success"] is True
    assert installed["service_name"] == "example_service"
    assert installed["archive_hash"] == packed["archive_hash"]
    assert installed["auto_started"] is True  # installed services start, unless said otherwise
    assert ISO.match(installed["installed_at"])

    listing = node.ok("list")
    assert (listing["total_installed"], listing["total_running"]) == (1, 1)
    assert listing["services"]["example_service"].keys() >= LISTED

    info = node.ok("info", "example_service")
    assert info["name"] == "example_service"
    assert info["running"] is True
    assert info.keys() >= LISTED

    for command, stamp in (("start", "started_at"), ("restart", "restarted_at"), ("stop", "stopped_at")):
        result = node.ok(command, "example_service")
        assert {"success", "service_name", stamp, "message"} <= result.keys(), command
        assert result["success"] is True and result["service_name"] == "example_service"
        assert ISO.match(result[stamp])

    node.ok("start", "example_service")
    assert node.ok("list")["total_running"] == 1
    answer = node.ok("call", "example_service/greet", "--params", '{"name": "Ada"}')
    assert answer["message"].endswith("Ada!")

    logs = node.ok("logs", "example_service")
    assert logs["service_name"] == "example_service"
    assert any("starting example_service" in line for line in logs["lines"])
    events = node.ok("events", "--type", "service_started")["events"]
    assert events and all(e["type"] == "service_started" for e in events)
    assert {"type", "service", "version", "time", "data"} <= events[-1].keys()

    exported = node.ok("export", "example_service", "-o", str(tmp_path / "copy.tar.gz"))
    assert (tmp_path / "copy.tar.gz").read_bytes() == archive.read_bytes()
    assert exported == {
        "service_name": "example_service",
        "archive": str(tmp_path / "copy.tar.gz"),
        "size": archive.stat().st_size,
        "archive_hash": packed["archive_hash"],
    }

    status = node.ok("status")
    assert {"orchestrator_status", "services_directory", "statistics"} <= status.keys()
    assert status["statistics"]["total_running"] == 1

    uninstalled = node.ok("uninstall", "example_service")
    assert {"success", "service_name", "uninstalled_at"} <= uninstalled.keys()
    assert node.ok("list") == {"total_installed": 0, "total_running": 0, "services": {}}


def test_json_prints_nothing_else_and_tables_without_it(shared_node: NodeProcess) -> None:
    plain = shared_node.cli("status")
    assert plain.code == 0, str(plain)
    assert "orchestrator_status" in plain.stdout and shared_node.peer_id in plain.stdout
    listing = shared_node.cli("list", "--json")
    assert listing.stdout.lstrip().startswith("{") and listing.stdout.rstrip().endswith("}")
    assert listing.stderr == ""


def test_unknown_service(shared_node: NodeProcess) -> None:
    for command in ("info", "start", "stop", "uninstall", "logs"):
        result = shared_node.cli(command, "no_such_service")
        assert result.code == 1, str(result)
        assert result.stdout == ""
        assert result.stderr.startswith("error [not_installed]: "), str(result)
        assert "Traceback" not in result.stderr


def test_bad_archive_is_refused_and_changes_nothing(shared_node: NodeProcess, tmp_path: Path) -> None:
    before = shared_node.ok("list")
    not_gzip = tmp_path / "bad.tar.gz"
    not_gzip.write_bytes(b"this is not an archive")
    result = shared_node.cli("install", str(not_gzip), "--json")
    assert result.code == 1, str(result)
    assert result.stdout == ""
    assert result.stderr.strip() == "error [not_gzip]: not a gzip file (bad magic bytes)"
    assert shared_node.ok("list") == before
    assert shared_node.ok("status")["statistics"]["failed_installs"] >= 1


def test_call_errors(shared_node: NodeProcess) -> None:
    result = shared_node.cli("call", "nobody_here/greet")
    assert result.code == 1
    assert result.stderr.startswith("error [service_not_running]"), str(result)
    result = shared_node.cli("call", "orchestrator/no_such_method")
    assert result.code == 1
    assert result.stderr.startswith("error [unknown_method]"), str(result)
