"""What the store remembers about services and their versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p2p_orchestrator.archive import Version

__all__ = ["ServiceRecord", "VersionRecord"]


@dataclass(frozen=True)
class VersionRecord:
    """One installed version of a service."""

    id: int
    service: str
    version: str
    archive_hash: str
    archive_size: int
    manifest: Mapping[str, Any]
    files_count: int
    directory: str
    """Path relative to the store's ``services/`` directory."""
    installed_at: str
    release: bytes | None = None
    """The release statement it was installed with (its exact bytes), or ``None``: unsigned."""

    @property
    def semver(self) -> Version:
        """The version, parsed for ordering."""
        return Version.parse(self.version)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form the API reports in ``versions``."""
        return {
            "version": self.version,
            "archive_hash": self.archive_hash,
            "archive_size": self.archive_size,
            "installed_at": self.installed_at,
            "files_count": self.files_count,
            "signed": self.release is not None,
        }


@dataclass(frozen=True)
class ServiceRecord:
    """An installed service: its current version and the others kept for rollback."""

    name: str
    current: VersionRecord
    versions: tuple[VersionRecord, ...]
    """Every kept version, oldest install first; includes ``current``."""
    desired_state: str
    """``"running"`` or ``"stopped"``: what the node restores after a restart."""
    last_revert: Mapping[str, Any] | None = None
    """The latest automatic revert (``from_version``, ``to_version``, ``reason``, ``at``), if any."""

    def previous(self) -> VersionRecord | None:
        """The version installed just before the current one, if it is still kept."""
        older = [v for v in self.versions if v.id < self.current.id]
        return older[-1] if older else None
