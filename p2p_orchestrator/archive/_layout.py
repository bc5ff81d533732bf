"""The shape a service archive must have: one top directory, unique names."""

from __future__ import annotations

from dataclasses import dataclass

from p2p_orchestrator.archive._limits import ArchiveLimits
from p2p_orchestrator.archive._names import (
    check_forbidden,
    check_service_name,
    collision_key,
    split_member_path,
)
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["Layout"]


class Layout:
    """Checks members one by one as they stream past.

    :meth:`add` returns the member's path components below the top directory
    (``()`` for the top directory itself, ``None`` for a root ``./`` entry), or
    raises if the member would break the layout: a second top-level entry, a
    file at the top level, a duplicate, or a name that collides with another
    one case-insensitively (a file and a directory included).
    """

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self.top: str | None = None
        self.members = 0
        self._seen: dict[str, _Claim] = {}

    def add(self, path: str, *, is_dir: bool) -> tuple[str, ...] | None:
        self.members += 1
        if self.members > self._limits.max_members:
            raise ServiceInstallationError(
                f"archive member {path!r}: more than {self._limits.max_members} members",
                code="too_many_members",
            )
        parts = split_member_path(path, is_dir=is_dir, limits=self._limits)
        if parts is None:
            return None
        check_forbidden(path, parts)
        self._check_top(path, parts, is_dir=is_dir)
        self._check_unique(path, parts, is_dir=is_dir)
        return parts[1:]

    def _check_top(self, path: str, parts: tuple[str, ...], *, is_dir: bool) -> None:
        if len(parts) == 1 and not is_dir:
            raise ServiceInstallationError(
                f"archive member {path!r}: file at the top level (everything must be inside <service_name>/)",
                code="bad_layout",
            )
        if self.top is None:
            try:
                self.top = check_service_name(parts[0])
            except ServiceInstallationError as exc:
                raise ServiceInstallationError(
                    f"archive member {path!r}: top directory is not a valid service name: {exc.message}",
                    code=exc.code,
                ) from exc
        elif parts[0] != self.top:
            raise ServiceInstallationError(
                f"archive member {path!r}: second top-level entry besides {self.top!r}/",
                code="bad_layout",
            )

    def _check_unique(self, path: str, parts: tuple[str, ...], *, is_dir: bool) -> None:
        for depth in range(1, len(parts)):
            self._claim(path, parts[:depth], is_dir=True, implied=True)
        self._claim(path, parts, is_dir=is_dir, implied=False)

    def _claim(self, path: str, parts: tuple[str, ...], *, is_dir: bool, implied: bool) -> None:
        """Record that ``parts`` names a file or directory, refusing any other claim on its key."""
        key = collision_key(parts)
        exact = "/".join(parts)
        previous = self._seen.get(key)
        if previous is None:
            self._seen[key] = _Claim(exact, is_dir, path, explicit=not implied)
            return
        if previous.exact == exact and previous.is_dir and is_dir:
            if implied:
                return
            if not previous.explicit:
                previous.explicit = True
                return
        if previous.exact == exact and previous.is_dir == is_dir:
            raise ServiceInstallationError(
                f"archive member {path!r}: duplicate member", code="duplicate_member"
            )
        raise ServiceInstallationError(
            f"archive member {path!r}: collides with {previous.member!r} (names must differ "
            "case-insensitively, and a name cannot be both a file and a directory)",
            code="name_collision",
        )


@dataclass
class _Claim:
    exact: str
    is_dir: bool
    member: str
    explicit: bool
