"""Install, upgrade, reinstall, downgrade, rollback, uninstall and export round trips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from p2p_orchestrator import (
    Orchestrator,
    OrchestratorConfig,
    ServiceInstallationError,
    ServiceManagementError,
    StoreSettings,
)
from p2p_orchestrator.config import RuntimeSettings
from tests.helpers import make_archive, tree_digest

NOTHING_STARTS = OrchestratorConfig(runtime=RuntimeSettings(auto_start=False))
"""For tests of what the store records: no process, so nothing about it changes between two looks."""

LIST_ENTRY_KEYS = {
    "installed",
    "running",
    "installed_at",
    "archive_hash",
    "manifest",
    "files_count",
    "directory_exists",
}


async def test_install_reports_the_spec_shape_and_the_archive_hash(
    orch: Orchestrator, tmp_path: Path
) -> None:
    archive = make_archive(tmp_path)
    result = await orch.install_service(archive)
    assert set(result) == {"success", "service_name", "installed_at", "archive_hash", "auto_started"}
    assert result["success"] is True
    assert result["service_name"] == "example_service"
    assert result["archive_hash"] == hashlib.sha256(archive).hexdigest()
    assert result["auto_started"] is True  # as the seed's install shows: a service starts when installed
    assert result["installed_at"].endswith("+00:00")


async def test_list_and_info_describe_the_installed_service(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=NOTHING_STARTS) as orch:
        await _list_and_info(orch, tmp_path)


async def _list_and_info(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(make_archive(tmp_path))
    listing = await orch.list_services()
    assert listing["total_installed"] == 1
    assert listing["total_running"] == 0
    entry = listing["services"]["example_service"]
    assert set(entry) >= LIST_ENTRY_KEYS
    assert entry["installed"] is True and entry["directory_exists"] is True
    assert entry["manifest"]["version"] == "1.0.0"
    assert entry["files_count"] == 5

    info = await orch.get_service_info("example_service")
    assert info["name"] == "example_service"
    assert info["running"] is False
    assert {k: info[k] for k in LIST_ENTRY_KEYS} == {k: entry[k] for k in LIST_ENTRY_KEYS}
    # manifest.configuration overlaid by config/default.json
    assert info["configuration"] == {"greeting": "Hi", "setting2": 42}
    assert (Path(info["directory"]) / "main.py").is_file()


async def test_operator_settings_overlay_the_service_configuration(home: Path, tmp_path: Path) -> None:
    home.mkdir()
    (home / "config.toml").write_text("[services.example_service.config]\nsetting2 = 7\n")
    async with Orchestrator(home) as orch:
        await orch.install_service(make_archive(tmp_path))
        info = await orch.get_service_info("example_service")
    assert info["configuration"] == {"greeting": "Hi", "setting2": 7}


async def test_export_reinstalls_elsewhere_to_the_same_hash(orch: Orchestrator, tmp_path: Path) -> None:
    installed = await orch.install_service(make_archive(tmp_path))
    exported = await orch.export_service("example_service")
    assert hashlib.sha256(exported).hexdigest() == installed["archive_hash"]
    async with Orchestrator(tmp_path / "other-home") as other:
        again = await other.install_service(exported)
    assert again["archive_hash"] == installed["archive_hash"]


async def test_install_from_a_path(orch: Orchestrator, tmp_path: Path) -> None:
    path = tmp_path / "svc.tar.gz"
    path.write_bytes(make_archive(tmp_path))
    result = await orch.install_service(path)
    assert result["archive_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()


async def test_reinstall_of_the_same_archive_needs_force(orch: Orchestrator, tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    first = await orch.install_service(archive)
    with pytest.raises(ServiceInstallationError) as refused:
        await orch.install_service(archive)
    assert refused.value.code == "already_installed"
    assert "force_reinstall" in refused.value.message
    forced = await orch.install_service(archive, force_reinstall=True)
    assert forced["archive_hash"] == first["archive_hash"]
    info = await orch.get_service_info("example_service")
    assert len(info["versions"]) == 2


async def test_same_version_with_other_content_is_a_conflict(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(make_archive(tmp_path / "a"))
    changed = make_archive(tmp_path / "b", files={"extra.txt": "changed"})
    with pytest.raises(ServiceInstallationError) as refused:
        await orch.install_service(changed)
    assert refused.value.code == "version_conflict"


async def test_upgrade_keeps_the_old_version_and_rollback_returns_to_it(
    orch: Orchestrator, tmp_path: Path
) -> None:
    v1 = await orch.install_service(make_archive(tmp_path, version="1.0.0"))
    v1_dir = Path((await orch.get_service_info("example_service"))["directory"])
    v1_digest = tree_digest(v1_dir)
    v2 = await orch.install_service(make_archive(tmp_path, version="1.1.0"))
    info = await orch.get_service_info("example_service")
    assert info["version"] == "1.1.0"
    assert [v["version"] for v in info["versions"]] == ["1.1.0", "1.0.0"]
    assert tree_digest(v1_dir) == v1_digest  # the old version is untouched on disk

    rolled = await orch.rollback_service("example_service")
    assert rolled["from_version"] == "1.1.0" and rolled["to_version"] == "1.0.0"
    info = await orch.get_service_info("example_service")
    assert info["archive_hash"] == v1["archive_hash"]
    assert Path(info["directory"]) == v1_dir
    assert (await orch.export_service("example_service")) == make_archive(tmp_path / "again", version="1.0.0")
    assert v2["archive_hash"] != v1["archive_hash"]

    with pytest.raises(ServiceManagementError) as nothing_older:
        await orch.rollback_service("example_service")
    assert nothing_older.value.code == "no_previous_version"


async def test_downgrade_is_refused_unless_forced(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(make_archive(tmp_path, version="2.0.0"))
    with pytest.raises(ServiceInstallationError) as refused:
        await orch.install_service(make_archive(tmp_path, version="1.9.9"))
    assert refused.value.code == "downgrade_refused"
    assert (await orch.get_service_info("example_service"))["version"] == "2.0.0"
    await orch.install_service(make_archive(tmp_path, version="1.9.9"), force_reinstall=True)
    assert (await orch.get_service_info("example_service"))["version"] == "1.9.9"


async def test_prerelease_to_release_is_an_upgrade(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(make_archive(tmp_path, version="1.0.0-rc.1"))
    await orch.install_service(make_archive(tmp_path, version="1.0.0"))
    assert (await orch.get_service_info("example_service"))["version"] == "1.0.0"


async def test_uninstall_removes_every_version_and_archive(
    orch: Orchestrator, home: Path, tmp_path: Path
) -> None:
    await orch.install_service(make_archive(tmp_path, version="1.0.0"))
    await orch.install_service(make_archive(tmp_path, version="1.1.0"))
    result = await orch.uninstall_service("example_service")
    assert set(result) == {"success", "service_name", "uninstalled_at"}
    assert (await orch.list_services())["total_installed"] == 0
    assert list((home / "services").iterdir()) == []
    assert list((home / "archives").iterdir()) == []
    with pytest.raises(ServiceManagementError) as gone:
        await orch.get_service_info("example_service")
    assert gone.value.code == "not_installed"
    # and it installs again from scratch
    await orch.install_service(make_archive(tmp_path, version="1.0.0"))


async def test_only_the_configured_number_of_versions_is_kept(home: Path, tmp_path: Path) -> None:
    config = OrchestratorConfig(store=StoreSettings(keep_versions=2, fsync=False))
    async with Orchestrator(home, config=config) as orch:
        for minor in range(4):
            await orch.install_service(make_archive(tmp_path, version=f"1.{minor}.0"))
        info = await orch.get_service_info("example_service")
    assert [v["version"] for v in info["versions"]] == ["1.3.0", "1.2.0"]
    assert len(list((home / "services" / "example_service" / "versions").iterdir())) == 2
    assert len(list((home / "archives").iterdir())) == 2


async def test_state_survives_a_restart_of_the_orchestrator(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=NOTHING_STARTS) as orch:
        await orch.install_service(make_archive(tmp_path, version="1.0.0"))
        await orch.install_service(make_archive(tmp_path, version="1.1.0"))
        before = await orch.list_services()
    async with Orchestrator(home, config=NOTHING_STARTS) as orch:
        assert await orch.list_services() == before
        await orch.rollback_service("example_service")


async def test_a_home_is_used_by_one_process_at_a_time(home: Path) -> None:
    async with Orchestrator(home):
        with pytest.raises(ServiceManagementError) as locked:
            async with Orchestrator(home):
                pass
    assert locked.value.code == "home_locked"


async def test_unknown_service_errors_name_the_service(orch: Orchestrator) -> None:
    for call in (orch.get_service_info, orch.export_service, orch.uninstall_service, orch.rollback_service):
        with pytest.raises(ServiceManagementError, match="'nope' is not installed"):
            await call("nope")


async def test_status_counts_operations(orch: Orchestrator, tmp_path: Path) -> None:
    await orch.install_service(make_archive(tmp_path))
    with pytest.raises(ServiceInstallationError):
        await orch.install_service(b"not an archive")
    status = await orch.get_orchestrator_status()
    assert status["orchestrator_status"] == "running"
    assert status["services_directory"].endswith("services")
    assert status["statistics"]["installs"] == 1
    assert status["statistics"]["failed_installs"] == 1
    assert status["statistics"]["total_installed"] == 1
