"""Is a node home consistent?  The checks the crash, disk and soak suites run after every fault.

* :func:`check_store`: every version directory on disk is known to the database
  and vice versa, every service directory belongs to an installed service,
  ``current`` points at the current version, the cached archives are exactly
  those of the kept versions and hash to their names, each kept version's files
  are exactly the tree of its archive, and no staging, trash or temporary debris
  is left.
* :func:`expected_digest`: the tree of an archive as the store unpacks it.
* :func:`recorded_processes`: the service processes ``run/*.pid`` names, to check
  later that none of them outlived its node.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from p2p_orchestrator import Orchestrator
from p2p_orchestrator.archive import unpack_archive

__all__ = ["check_store", "debris", "expected_digest", "recorded_processes", "version_digest"]


def version_digest(path: Path) -> str:
    """A fingerprint of every name, type, mode and byte under ``path``, bytecode caches excluded.

    A running service's interpreter writes ``__pycache__`` into its version
    directory; that is derived data, not part of the installed version.
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        entries += [Path(dirpath) / name for name in dirnames + filenames]
    digest = hashlib.sha256()
    for full in sorted(entries):
        st = full.lstat()
        digest.update(f"{full.relative_to(path)}\0{st.st_mode}\0".encode())
        if full.is_file() and not full.is_symlink():
            digest.update(full.read_bytes())
    return digest.hexdigest()


def expected_digest(archive: bytes, scratch: Path) -> tuple[str, str]:
    """``(archive sha256, version_digest of its unpacked tree)``, unpacked as the store does."""
    scratch.mkdir(parents=True)
    unpacked = unpack_archive(io.BytesIO(archive), scratch)
    return unpacked.archive_hash, version_digest(scratch)


def debris(home: Path) -> list[Path]:
    """Leftovers of interrupted operations: staging, trash, temporary files of atomic writes.

    A temporary file named with this process's pid is a write in progress, not a leftover: a node
    opened here on ``home`` may be recording a peer it redialled (``.peers.json.<pid>.tmp``).
    """
    found = [*(home / "staging").iterdir(), *(home / "trash").iterdir()]
    ours = f".{os.getpid()}.tmp"
    temps = [p for p in home.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    found += [p for p in temps if not p.name.endswith(ours)]
    run = home / "run"
    if run.is_dir():
        found += [p for p in run.iterdir() if p.suffix == ".tmp"]
    return found


def _db_versions(home: Path) -> dict[str, set[str]]:
    """``{service: {version directory}}`` as ``state.db`` on disk has it (a separate read-only connection)."""
    conn = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        found: dict[str, set[str]] = {}
        for service, directory in conn.execute("SELECT service, directory FROM versions"):
            found.setdefault(service, set()).add(directory)
        services = {row[0] for row in conn.execute("SELECT name FROM services")}
    finally:
        conn.close()
    assert set(found) == services, f"versions without a service row, or services without versions: {found}"
    return found


def check_store(orch: Orchestrator, digests: Mapping[str, str]) -> None:
    """Assert the home of the open ``orch`` is consistent (see the module docstring).

    ``digests`` maps an archive's sha256 to the :func:`version_digest` of its tree.
    """
    store = orch.store
    records = store.records
    assert debris(orch.home) == [], f"debris left: {debris(orch.home)}"
    assert {p.name for p in store.services_dir.iterdir()} == set(records), "service dirs differ from the db"
    db = _db_versions(orch.home)
    assert {name: {v.directory for v in r.versions} for name, r in records.items()} == db
    for name, record in records.items():
        service_dir = store.services_dir / name
        assert {p.name for p in service_dir.iterdir()} == {"versions", "current"}, list(service_dir.iterdir())
        on_disk = {f"{name}/versions/{p.name}" for p in (service_dir / "versions").iterdir()}
        assert on_disk == db[name], f"{name}: version dirs {sorted(on_disk)} != db {sorted(db[name])}"
        current = (service_dir / "current").resolve()
        assert current == store.version_dir(record.current).resolve(), f"{name}: current -> {current}"
        for version in record.versions:
            digest = digests.get(version.archive_hash)
            assert digest is not None, f"{name} {version.version}: unknown archive {version.archive_hash}"
            assert version_digest(store.version_dir(version)) == digest, f"{name} {version.version} damaged"
    hashes = {v.archive_hash for r in records.values() for v in r.versions}
    assert {p.name for p in store.archives_dir.iterdir()} == {f"{h}.tar.gz" for h in hashes}
    for archive_hash in hashes:
        data = store.archive_path(archive_hash).read_bytes()
        assert hashlib.sha256(data).hexdigest() == archive_hash, f"archive {archive_hash} damaged"


def recorded_processes(home: Path) -> dict[int, int]:
    """``{pid: start ticks}`` of the service processes ``home/run/*.pid`` records now."""
    found = {}
    run = home / "run"
    for path in run.glob("*.pid") if run.is_dir() else ():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a record being written: the kill can land mid-write (its .tmp is debris)
        found[int(data["pid"])] = int(data["start_ticks"])
    return found
