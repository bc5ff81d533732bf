"""``ReleaseGate``: which archives may come in, by who signed them.

Every path that installs goes through it: a local install (a statement given, or lying next to
the archive file), a push or a swarm (the statement travels in the transfer's offer), a fetch
(the serving node sends the statement it installed the archive with).  In that order:

1. **Before a byte of the archive is written**, :meth:`ReleaseGate.offered` verifies the
   statement (signature, a publisher of ``[publishers.*]`` allowed to release that name, not
   expired) or refuses its absence when ``[security] require_signed`` is on, unless the local
   operator says ``allow_unsigned``; a transfer's offer is also bound to the statement's archive
   hash and size (:meth:`ReleaseGate.offered_bytes`).
2. **Once the archive is staged**, :meth:`ReleaseGate.check_staged` checks that it is the archive
   the statement names (name, version, sha256, size) and that it is not older than the highest
   signed version this node ever installed of that service (its *release floor*, kept by the
   store across restarts and uninstalls), unless the local operator says ``allow_rollback``.

A refusal is a :class:`~p2p_orchestrator.errors.ReleaseError` (an install refusal) with its own
code, and the node is left exactly as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from p2p_orchestrator.archive import Version
from p2p_orchestrator.errors import ReleaseError
from p2p_orchestrator.orchestrator.shared import Part, Shared
from p2p_orchestrator.release import ReleaseStatement, TrustPolicy, public_key_text
from p2p_orchestrator.store import StagedArchive

__all__ = ["ReleaseGate"]


class ReleaseGate(Part):
    """The release checks of every install path; see the module docstring."""

    def __init__(self, shared: Shared, clock: Callable[[], float] = time.time) -> None:
        super().__init__(shared)
        self._clock = clock

    @property
    def policy(self) -> TrustPolicy:
        """The publishers and ``require_signed`` of the configuration in force."""
        return self._catalog.config.trust_policy()

    def offered(self, statement: ReleaseStatement | None, *, allow_unsigned: bool) -> ReleaseStatement | None:
        """Verify ``statement`` (or refuse its absence) before anything of the archive is written."""
        policy = self.policy
        if statement is None:
            if not allow_unsigned:
                policy.require(None)
            return None
        policy.verify(statement, now=self._clock())
        return statement

    def offered_bytes(self, release: bytes | None, *, archive_sha256: str, archive_size: int) -> None:
        """Refuse a transfer's offer whose statement is not trusted or names another archive."""
        statement = ReleaseStatement.from_bytes(release) if release is not None else None
        if self.offered(statement, allow_unsigned=False) is None:
            return
        assert statement is not None
        if (statement.archive_sha256, statement.archive_size) != (archive_sha256, archive_size):
            raise ReleaseError(
                f"the release statement of {statement.name} {statement.version} names the archive "
                f"{statement.archive_sha256[:12]} ({statement.archive_size} bytes), but the offer is "
                f"{archive_sha256[:12]} ({archive_size} bytes); ask the sender for the matching statement",
                code="release_mismatch",
            )

    def check_staged(
        self, statement: ReleaseStatement, staged: StagedArchive, *, allow_rollback: bool
    ) -> None:
        """The staged archive is the one ``statement`` names, and not below the service's release floor."""
        manifest = staged.unpacked.manifest
        self.policy.check_archive(
            statement,
            name=staged.service_name,
            version=str(manifest.version),
            archive_sha256=staged.archive_hash,
            archive_size=staged.unpacked.archive_size,
        )
        floor = self._store.release_floor(staged.service_name)
        if floor is None or allow_rollback or manifest.version >= Version.parse(floor):
            return
        raise ReleaseError(
            f"{staged.service_name} {manifest.version} is a validly signed release (by "
            f"{public_key_text(statement.publisher_key)}), but this node already ran {floor}: installing an "
            "older release is a rollback, refused; publish a newer release, or (on this node only) "
            "install it with allow_rollback",
            code="release_rollback",
        )

    def statement_of(self, archive_hash: str) -> bytes | None:
        """The statement an installed archive came with, for a node that fetches it from here."""
        for record in self._store.records.values():
            for version in record.versions:
                if version.archive_hash == archive_hash and version.release is not None:
                    return version.release
        return None
