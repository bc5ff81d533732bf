"""The store database's layout: older layouts are migrated in place, newer ones refused by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator, ServiceManagementError
from tests.helpers import make_archive
from tests.runtime.support import fast_config

NAME = "example_service"


def rewrite(home: Path, *statements: str) -> None:
    """Run ``statements`` on the home's database, as another version of the code would have left it."""
    conn = sqlite3.connect(home / "state.db", isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def layout_of(home: Path) -> tuple[str, list[str]]:
    conn = sqlite3.connect(home / "state.db")
    try:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(services)")]
    finally:
        conn.close()
    return version, columns


async def test_a_store_of_the_first_layout_is_migrated_with_its_services_intact(
    home: Path, tmp_path: Path
) -> None:
    async with Orchestrator(home, config=fast_config()) as orch:
        await orch.install_service(make_archive(tmp_path / "v1", version="1.0.0"))
        await orch.install_service(make_archive(tmp_path / "v2", version="2.0.0"))
        await orch.start_service(NAME)
        before = await orch.get_service_info(NAME)
    rewrite(  # the first layout had no last_revert, no release statements and no release floors
        home,
        "ALTER TABLE services DROP COLUMN last_revert",
        "ALTER TABLE versions DROP COLUMN release",
        "DROP TABLE release_floors",
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
    )
    async with Orchestrator(home, config=fast_config()) as orch:
        after = await orch.get_service_info(NAME)
        assert orch.is_running(NAME)  # the desired state came through
        same = ("version", "archive_hash", "versions", "desired_state", "last_revert")
        assert {k: after[k] for k in same} == {k: before[k] for k in same}
        await orch.rollback_service(NAME)
    assert layout_of(home) == ("3", ["name", "current_version", "desired_state", "last_revert"])
    assert "release_floors" in tables_of(home)


async def test_a_store_written_by_a_newer_version_is_refused_untouched(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=fast_config()) as orch:
        await orch.install_service(make_archive(tmp_path / "v1"))
    rewrite(home, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ServiceManagementError) as refused:
        async with Orchestrator(home, config=fast_config()):
            pass
    assert refused.value.code == "store_too_new"
    assert "written by a newer p2p-orchestrator (store layout 99; this one reads up to 3)" in str(
        refused.value
    )
    assert layout_of(home)[0] == "99"
    rewrite(home, "UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    async with Orchestrator(home, config=fast_config()) as orch:  # the refusal released the home
        assert NAME in (await orch.list_services())["services"]


def tables_of(home: Path) -> list[str]:
    conn = sqlite3.connect(home / "state.db")
    try:
        return sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master"))
    finally:
        conn.close()


async def test_a_newer_layout_is_refused_before_anything_is_written(home: Path) -> None:
    """Regression: the tables of this layout were created in a newer database before refusing it."""
    home.mkdir(parents=True, exist_ok=True)
    rewrite(
        home,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta VALUES ('schema_version', '4')",
    )
    with pytest.raises(ServiceManagementError) as refused:
        async with Orchestrator(home, config=fast_config()):
            pass
    assert refused.value.code == "store_too_new"
    assert tables_of(home) == ["meta", "sqlite_autoindex_meta_1"]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        pytest.param(b"this is not a database" * 100, "file is not a database", id="not-sqlite"),
        pytest.param(None, "its store layout is 'two', not a version", id="bad-layout"),
    ],
)
async def test_a_damaged_database_is_refused_with_a_typed_error(
    home: Path, tmp_path: Path, damage: bytes | None, why: str
) -> None:
    async with Orchestrator(home, config=fast_config()) as orch:
        await orch.install_service(make_archive(tmp_path / "v1"))
    if damage is None:
        rewrite(home, "UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    else:
        for leftover in home.glob("state.db*"):
            leftover.unlink()
        (home / "state.db").write_bytes(damage)
    with pytest.raises(ServiceManagementError) as refused:
        async with Orchestrator(home, config=fast_config()):
            pass
    assert refused.value.code == "store_corrupt"
    assert why in refused.value.message and "restore it from a backup" in refused.value.message
