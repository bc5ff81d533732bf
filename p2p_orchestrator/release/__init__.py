"""Signed releases: who published an archive, and whether this node trusts them for that service.

A publisher makes a key once (:meth:`PublisherKey.generate`, :meth:`PublisherKey.save`; the
command ``p2p-orchestrator keygen``) and signs each archive it releases
(:func:`sign_archive`; ``p2p-orchestrator sign``), which gives a :class:`ReleaseStatement`: the
service's name and version, the archive's sha256 and size, the publisher's public key, when it
was issued and until when it holds, and an Ed25519 signature over all of it.  Its file lies
beside the archive (``X.tar.gz`` and ``X.tar.gz`` + :data:`RELEASE_SUFFIX`).

A node lists the publishers it trusts, each for some services, in ``[publishers.<label>]``, and
may refuse unsigned archives (``[security] require_signed``); together they are its
:class:`TrustPolicy`::

    policy.require(statement)                      # release_required, if unsigned and required
    publisher = policy.verify(statement, now=time.time())
    policy.check_archive(statement, name=..., version=..., archive_sha256=..., archive_size=...)

Every refusal is a :class:`~p2p_orchestrator.errors.ReleaseError` (an installation error) with a
stable code: ``bad_release``, ``bad_signature``, ``unknown_publisher``, ``publisher_not_allowed``,
``release_expired``, ``release_not_yet_valid``, ``release_mismatch``, ``release_required``,
``bad_public_key``; for key files ``key_unreadable``, ``insecure_key``, ``bad_key_file``,
``key_exists``, ``write_failed``.  :func:`sign_archive` refuses a bad archive with the archive's
own codes.  This package imports neither trio nor libp2p, nor the configuration or the store.
"""

from p2p_orchestrator.errors import ReleaseError
from p2p_orchestrator.release._keytext import parse_public_key, public_key_text
from p2p_orchestrator.release.keys import KEY_FILE_HEADER, PublisherKey, sign_archive
from p2p_orchestrator.release.statement import (
    FORMAT_VERSION,
    MAX_STATEMENT_BYTES,
    RELEASE_SUFFIX,
    SIGNING_CONTEXT,
    ReleaseStatement,
)
from p2p_orchestrator.release.trust import MAX_CLOCK_SKEW, Publisher, TrustPolicy

__all__ = [
    "FORMAT_VERSION",
    "KEY_FILE_HEADER",
    "MAX_CLOCK_SKEW",
    "MAX_STATEMENT_BYTES",
    "RELEASE_SUFFIX",
    "SIGNING_CONTEXT",
    "Publisher",
    "PublisherKey",
    "ReleaseError",
    "ReleaseStatement",
    "TrustPolicy",
    "parse_public_key",
    "public_key_text",
    "sign_archive",
]
