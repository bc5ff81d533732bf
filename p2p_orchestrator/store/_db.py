"""The sqlite database behind the store: schema and the few statements it needs.

Writes happen in explicit ``BEGIN IMMEDIATE`` transactions with
``synchronous=FULL`` so a committed switch survives a crash of the process or the
machine.  The store keeps everything it reads in memory; the database is read
in full only when the store opens.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from p2p_orchestrator.errors import OrchestratorError, ServiceManagementError
from p2p_orchestrator.store.records import ServiceRecord, VersionRecord

SCHEMA_VERSION = 3
"""The layout this code reads and writes; older layouts are migrated when the store opens."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    current_version INTEGER NOT NULL,
    desired_state TEXT NOT NULL DEFAULT 'stopped',
    last_revert TEXT
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    archive_hash TEXT NOT NULL,
    archive_size INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    files_count INTEGER NOT NULL,
    directory TEXT NOT NULL,
    installed_at TEXT NOT NULL,
    release BLOB
);
CREATE INDEX IF NOT EXISTS versions_by_service ON versions (service);
CREATE TABLE IF NOT EXISTS release_floors (
    service TEXT PRIMARY KEY,
    version TEXT NOT NULL
);
"""

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE services ADD COLUMN last_revert TEXT",),
    2: (
        "ALTER TABLE versions ADD COLUMN release BLOB",
        "CREATE TABLE release_floors (service TEXT PRIMARY KEY, version TEXT NOT NULL)",
    ),
}
"""The statements that take the layout from version ``n`` to ``n + 1``."""


class Database:
    """A thin owner of one sqlite connection; used from one thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            found = self._layout()
            if found is None:  # a new database: the latest layout
                with self.transaction() as cur:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        cur.execute(statement)
                    cur.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
            else:
                self._migrate(found)
        except sqlite3.Error as exc:
            self._conn.close()
            raise _corrupt(path, str(exc)) from exc
        except BaseException:
            self._conn.close()
            raise

    def _layout(self) -> int | None:
        """The layout the database says it has; ``None`` for one that has none yet (new)."""
        if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
            return None
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            return None
        text = str(row[0])
        if not text.isdigit() or int(text) < 1:
            raise _corrupt(self.path, f"its store layout is {text!r}, not a version")
        return int(text)

    def _migrate(self, found: int) -> None:
        """Bring a database of layout ``found`` to :data:`SCHEMA_VERSION` in one transaction.

        A newer layout is refused before anything is written to the database.
        """
        if found > SCHEMA_VERSION:
            raise ServiceManagementError(
                f"{self.path} was written by a newer p2p-orchestrator (store layout {found}; this one "
                f"reads up to {SCHEMA_VERSION}); run that version, or point this one at another home",
                code="store_too_new",
            )
        if found == SCHEMA_VERSION:
            return
        with self.transaction() as cur:
            for version in range(found, SCHEMA_VERSION):
                for statement in _MIGRATIONS[version]:
                    cur.execute(statement)
            cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(
        self, error: type[OrchestratorError] = ServiceManagementError
    ) -> Iterator[sqlite3.Cursor]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.

        A database that cannot be written (disk full, I/O error: sqlite's
        ``SQLITE_FULL``, ``SQLITE_IOERR``...) raises ``error`` with code
        ``write_failed``, whether it fails in a statement or in the ``COMMIT``;
        either way the transaction is rolled back and nothing of it remains.
        """
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _write_failed(error, self.path, exc) from exc
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:  # a failed COMMIT leaves the transaction open
                cur.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _write_failed(error, self.path, exc) from exc
            raise

    def load(self) -> dict[str, ServiceRecord]:
        """Every service with all of its kept versions."""
        versions: dict[str, list[VersionRecord]] = {}
        for row in self._conn.execute(
            "SELECT id, service, version, archive_hash, archive_size, manifest, files_count, directory,"
            " installed_at, release FROM versions ORDER BY id"
        ):
            record = VersionRecord(
                id=row[0],
                service=row[1],
                version=row[2],
                archive_hash=row[3],
                archive_size=row[4],
                manifest=json.loads(row[5]),
                files_count=row[6],
                directory=row[7],
                installed_at=row[8],
                release=bytes(row[9]) if row[9] is not None else None,
            )
            versions.setdefault(record.service, []).append(record)
        services: dict[str, ServiceRecord] = {}
        for name, current_id, desired, revert in self._conn.execute(
            "SELECT name, current_version, desired_state, last_revert FROM services"
        ):
            kept = tuple(versions.get(name, ()))
            current = next((v for v in kept if v.id == current_id), None)
            if current is None:
                raise RuntimeError(
                    f"store database is inconsistent: {name} points at missing version {current_id}"
                )
            services[name] = ServiceRecord(
                name=name,
                current=current,
                versions=kept,
                desired_state=desired,
                last_revert=json.loads(revert) if revert is not None else None,
            )
        return services

    def release_floors(self) -> dict[str, str]:
        """The highest signed version each service ever had installed here (anti-rollback)."""
        return {
            name: version
            for name, version in self._conn.execute("SELECT service, version FROM release_floors")
        }

    def orphan_version_ids(self) -> list[int]:
        """Versions whose service row is gone (left by nothing we do, but cheap to check)."""
        return [
            row[0]
            for row in self._conn.execute(
                "SELECT id FROM versions WHERE service NOT IN (SELECT name FROM services)"
            )
        ]


def _corrupt(path: Path, why: str) -> ServiceManagementError:
    return ServiceManagementError(
        f"cannot open the store database {path}: {why}; restore it from a backup, or move it away "
        "to start this home afresh",
        code="store_corrupt",
    )


def _write_failed(error: type[OrchestratorError], path: Path, exc: sqlite3.Error) -> OrchestratorError:
    return error(f"cannot write the store database {path}: {exc} (is the disk full?)", code="write_failed")


def insert_version(cur: sqlite3.Cursor, record: VersionRecord) -> int:
    """Insert a version row (its ``id`` is ignored) and return the new id."""
    cur.execute(
        "INSERT INTO versions (service, version, archive_hash, archive_size, manifest, files_count,"
        " directory, installed_at, release) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.service,
            record.version,
            record.archive_hash,
            record.archive_size,
            json.dumps(record.manifest, sort_keys=True),
            record.files_count,
            record.directory,
            record.installed_at,
            record.release,
        ),
    )
    new_id = cur.lastrowid
    assert new_id is not None
    return new_id


def set_current(cur: sqlite3.Cursor, name: str, version_id: int, *, desired_state: str | None = None) -> None:
    """Point ``name`` at ``version_id``, creating the service row if needed."""
    cur.execute(
        "INSERT INTO services (name, current_version, desired_state) VALUES (?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET current_version = excluded.current_version,"
        " desired_state = COALESCE(?, services.desired_state)",
        (name, version_id, desired_state or "stopped", desired_state),
    )


def set_last_revert(cur: sqlite3.Cursor, name: str, revert: Mapping[str, Any]) -> None:
    """Remember ``name``'s latest automatic revert (what ``get_service_info`` shows as ``last_revert``)."""
    cur.execute(
        "UPDATE services SET last_revert = ? WHERE name = ?", (json.dumps(revert, sort_keys=True), name)
    )


def delete_versions(cur: sqlite3.Cursor, ids: list[int]) -> None:
    cur.executemany("DELETE FROM versions WHERE id = ?", [(i,) for i in ids])


def delete_service(cur: sqlite3.Cursor, name: str) -> None:
    cur.execute("DELETE FROM versions WHERE service = ?", (name,))
    cur.execute("DELETE FROM services WHERE name = ?", (name,))


def set_release_floor(cur: sqlite3.Cursor, name: str, version: str) -> None:
    """Remember ``version`` as the lowest signed version ``name`` may be installed at from now on."""
    cur.execute(
        "INSERT INTO release_floors (service, version) VALUES (?, ?)"
        " ON CONFLICT(service) DO UPDATE SET version = excluded.version",
        (name, version),
    )


def set_desired_state(cur: sqlite3.Cursor, name: str, state: str) -> None:
    cur.execute("UPDATE services SET desired_state = ? WHERE name = ?", (state, name))
