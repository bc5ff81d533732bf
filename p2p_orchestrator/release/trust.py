"""Which publishers a node trusts, for which services, and the checks a statement must pass.

A node's ``[publishers.<label>]`` tables become :class:`Publisher` entries and ``[security]
require_signed`` the policy's ``require_signed`` (``OrchestratorConfig.trust_policy()``).  An
install path asks :meth:`TrustPolicy.require` whether a statement is needed, then
:meth:`TrustPolicy.verify` whom it is from and :meth:`TrustPolicy.check_archive` whether it is
about the archive at hand.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from fnmatch import fnmatchcase

from p2p_orchestrator.errors import ReleaseError
from p2p_orchestrator.release._keytext import KEY_BYTES, public_key_text
from p2p_orchestrator.release.statement import ReleaseStatement

__all__ = ["MAX_CLOCK_SKEW", "Publisher", "TrustPolicy"]

MAX_CLOCK_SKEW = 300
"""Seconds a statement may be issued ahead of this node's clock (the two clocks may differ)."""


def _when(timestamp: float) -> str:
    """A unix time as people read it, in UTC."""
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"unix time {timestamp:.0f}"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Publisher:
    """A publisher this node trusts: its key, and the services (names or ``fnmatch`` globs such as
    ``"web_*"``) it may release."""

    label: str
    """The ``<label>`` of its ``[publishers.<label>]`` table."""
    public_key: bytes
    """Its raw 32-byte Ed25519 public key."""
    services: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ReleaseError(f"a publisher's label must be non-empty text, got {self.label!r}")
        if type(self.public_key) is not bytes or len(self.public_key) != KEY_BYTES:
            raise ReleaseError(f"publisher {self.label}: a public key is {KEY_BYTES} bytes")
        if (
            not isinstance(self.services, tuple)
            or not self.services
            or not all(isinstance(pattern, str) and pattern for pattern in self.services)
        ):
            raise ReleaseError(
                f"publisher {self.label}: services must be a non-empty tuple of names or globs"
            )

    @property
    def public_text(self) -> str:
        """Its key as ``ed25519:<base64>``."""
        return public_key_text(self.public_key)

    def __repr__(self) -> str:
        return f"Publisher(label={self.label!r}, public_key={self.public_text!r}, services={self.services!r})"

    def may_release(self, name: str) -> bool:
        """Whether ``name`` is one of its services, or matches one of its globs."""
        return any(fnmatchcase(name, pattern) for pattern in self.services)


@dataclass(frozen=True)
class TrustPolicy:
    """The publishers a node trusts, and whether it installs unsigned archives at all.

    The default (nobody trusted, ``require_signed`` false) installs unsigned archives and refuses
    every statement's publisher as unknown.
    """

    publishers: tuple[Publisher, ...] = ()
    require_signed: bool = False
    """Refuse (``release_required``) archives that come without a statement."""

    def require(self, statement: ReleaseStatement | None) -> None:
        """Refuse a missing statement (``release_required``) when ``require_signed`` is set."""
        if statement is None and self.require_signed:
            raise ReleaseError(
                "this node installs only signed releases ([security] require_signed = true) and the "
                "archive came without a release statement: sign it with `p2p-orchestrator sign ARCHIVE "
                "--key KEYFILE -o ARCHIVE.release` and provide the statement with it",
                code="release_required",
            )

    def verify(self, statement: ReleaseStatement, *, now: float) -> Publisher:
        """The trusted publisher who released ``statement``, checked at time ``now`` (unix seconds).

        In this order: the signature holds (``bad_signature``), its key is a known publisher's
        (``unknown_publisher``), that publisher may release ``statement.name``
        (``publisher_not_allowed``), it has not expired (``release_expired``), and it is not
        issued more than :data:`MAX_CLOCK_SKEW` seconds ahead of ``now``
        (``release_not_yet_valid``).  A key listed under several labels may release the union of
        their services; the first label that allows the name is returned.
        """
        statement.verify_signature()
        what = statement.describe()
        key = statement.publisher_text
        known = [p for p in self.publishers if p.public_key == statement.publisher_key]
        if not known:
            raise ReleaseError(
                f"release of {what} is signed by {key}, which no [publishers.*] entry lists; add it to "
                "config.toml or ask for a release signed by a trusted publisher",
                code="unknown_publisher",
            )
        allowed = next((p for p in known if p.may_release(statement.name)), None)
        if allowed is None:
            listed = "; ".join(f"[publishers.{p.label}] services = {list(p.services)}" for p in known)
            raise ReleaseError(
                f"release of {what} is signed by {key}, which may not release {statement.name} ({listed}); "
                f"add {statement.name} to its services in config.toml or ask for a release signed by a "
                f"publisher of {statement.name}",
                code="publisher_not_allowed",
            )
        if statement.expires_at is not None and now >= statement.expires_at:
            raise ReleaseError(
                f"release of {what} by [publishers.{allowed.label}] expired at {_when(statement.expires_at)} "
                f"(now {_when(now)}); ask the publisher to sign it again",
                code="release_expired",
            )
        if statement.issued_at > now + MAX_CLOCK_SKEW:
            raise ReleaseError(
                f"release of {what} by [publishers.{allowed.label}] is issued at "
                f"{_when(statement.issued_at)}, more than {MAX_CLOCK_SKEW} s after this node's clock "
                f"({_when(now)}); check the clocks of the publisher and of this node",
                code="release_not_yet_valid",
            )
        return allowed

    def check_archive(
        self,
        statement: ReleaseStatement,
        *,
        name: str,
        version: str,
        archive_sha256: str,
        archive_size: int,
    ) -> None:
        """Refuse (``release_mismatch``) a statement that is not about this archive.

        ``name`` and ``version`` are what the archive's manifest says, ``archive_sha256`` and
        ``archive_size`` what its bytes are; the message names the first field that differs.
        """
        for field, signed, actual in (
            ("name", statement.name, name),
            ("version", statement.version, version),
            ("archive_sha256", statement.archive_sha256, archive_sha256.lower()),
            ("archive_size", statement.archive_size, archive_size),
        ):
            if signed != actual:
                raise ReleaseError(
                    f"the release statement of {statement.describe()} is not about this archive: its "
                    f"{field} is {signed}, the archive's is {actual}; use the statement signed for this "
                    "archive, or sign this archive with `p2p-orchestrator sign`",
                    code="release_mismatch",
                )
