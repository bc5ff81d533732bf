"""The release statement: a publisher's signed word that an archive is a release of a service.

``X.tar.gz.release`` lies beside ``X.tar.gz``: a canonical CBOR map (format 1, keys below) that
names the service, its version, the archive's sha256 and size, the publisher's Ed25519 public
key, when it was signed and until when it holds, and the signature.  The signature covers
:data:`SIGNING_CONTEXT` followed by the canonical CBOR of the same map without ``sig``, so a
signature over anything else (another format, another program's message) never verifies as a
statement.  ``docs/protocol.md``, "Release statements", gives the exact bytes.

============  ==================  =====================================================
key           field               CBOR
============  ==================  =====================================================
``v``         format version      unsigned integer, 1
``name``      ``name``            text: a service name
``ver``       ``version``         text: a semantic version, in canonical form
``sha256``    ``archive_sha256``  bytes (32): the sha256 of the archive file
``size``      ``archive_size``    unsigned integer: the archive file's size in bytes
``key``       ``publisher_key``   bytes (32): the Ed25519 public key that signed
``iat``       ``issued_at``       unsigned integer: unix seconds
``exp``       ``expires_at``      unsigned integer (unix seconds, after ``iat``) or null
``sig``       ``signature``       bytes (64): Ed25519 over ``signed_bytes()``
============  ==================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2
import nacl.exceptions
import nacl.signing

from p2p_orchestrator._patterns import HEX_SHA256
from p2p_orchestrator.archive import Version, check_service_name
from p2p_orchestrator.errors import ReleaseError, ServiceInstallationError
from p2p_orchestrator.release._cbor import read_flat_map
from p2p_orchestrator.release._keytext import KEY_BYTES, public_key_text

__all__ = [
    "FORMAT_VERSION",
    "MAX_STATEMENT_BYTES",
    "RELEASE_SUFFIX",
    "SIGNATURE_BYTES",
    "SIGNING_CONTEXT",
    "ReleaseStatement",
]

MAX_STATEMENT_BYTES = 4096
"""The largest statement file read; a real one is about 250 bytes."""
RELEASE_SUFFIX = ".release"
"""The statement of ``X.tar.gz`` is the file ``X.tar.gz.release`` beside it."""
FORMAT_VERSION = 1
"""The value of the ``v`` key this code writes and reads."""
SIGNING_CONTEXT = b"p2p-orchestrator release statement 1\x00"
"""What the signed bytes begin with (domain separation): 36 ASCII bytes and a zero byte."""
SIGNATURE_BYTES = 64

_UINT_MAX = 2**64 - 1
_KEYS = ("v", "name", "ver", "sha256", "size", "key", "iat", "exp", "sig")


def _bad(message: str) -> ReleaseError:
    return ReleaseError(f"bad release statement: {message}", code="bad_release")


def _check_uint(field: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= _UINT_MAX:
        raise _bad(f"{field} must be a whole number from 0 to 2**64-1, got {value!r}")


def _check_bytes(field: str, value: object, size: int) -> None:
    if type(value) is not bytes or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise _bad(f"{field} must be {size} bytes, got {got}")


@dataclass(frozen=True)
class ReleaseStatement:
    """A signed statement that the archive with ``archive_sha256`` and ``archive_size`` is
    release ``version`` of service ``name``, by the holder of ``publisher_key``.

    Every field is checked when the statement is made (``bad_release``), so an instance is always
    well formed; whether its signature holds is :meth:`verify_signature`'s question, and whether
    this node trusts its publisher is :meth:`TrustPolicy.verify
    <p2p_orchestrator.release.TrustPolicy.verify>`'s.
    """

    name: str
    version: str
    archive_sha256: str
    """64 lowercase hex digits."""
    archive_size: int
    publisher_key: bytes
    """The signer's raw 32-byte Ed25519 public key."""
    issued_at: int
    """Unix seconds."""
    expires_at: int | None
    """Unix seconds after ``issued_at``, or ``None``: it never expires."""
    signature: bytes
    """64 bytes: Ed25519 over :meth:`signed_bytes`."""

    def __post_init__(self) -> None:
        try:
            check_service_name(self.name)
        except ServiceInstallationError as exc:
            raise _bad(f"name: {exc.message}") from None
        if not isinstance(self.version, str):
            raise _bad(f"version must be text, got {type(self.version).__name__}")
        try:
            canonical = str(Version.parse(self.version))
        except ServiceInstallationError as exc:
            raise _bad(f"version: {exc.message}") from None
        if canonical != self.version:
            raise _bad(f"version {self.version!r} is not in canonical form ({canonical!r})")
        if not isinstance(self.archive_sha256, str) or HEX_SHA256.fullmatch(self.archive_sha256) is None:
            raise _bad(f"archive_sha256 must be 64 lowercase hex digits, got {self.archive_sha256!r}")
        _check_uint("archive_size", self.archive_size)
        _check_bytes("publisher_key", self.publisher_key, KEY_BYTES)
        _check_uint("issued_at", self.issued_at)
        if self.expires_at is not None:
            _check_uint("expires_at", self.expires_at)
            if self.expires_at <= self.issued_at:
                raise _bad(f"expires_at ({self.expires_at}) is not after issued_at ({self.issued_at})")
        _check_bytes("signature", self.signature, SIGNATURE_BYTES)

    @property
    def publisher_text(self) -> str:
        """The publisher's key as ``[publishers.*] public_key`` spells it (``ed25519:...``)."""
        return public_key_text(self.publisher_key)

    def describe(self) -> str:
        """``"web 2.0.0"``: what the statement is about, for messages."""
        return f"{self.name} {self.version}"

    def _unsigned_map(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "name": self.name,
            "ver": self.version,
            "sha256": bytes.fromhex(self.archive_sha256),
            "size": self.archive_size,
            "key": self.publisher_key,
            "iat": self.issued_at,
            "exp": self.expires_at,
        }

    def signed_bytes(self) -> bytes:
        """What the signature covers: :data:`SIGNING_CONTEXT`, then the canonical CBOR of every field
        but the signature."""
        return SIGNING_CONTEXT + cbor2.dumps(self._unsigned_map(), canonical=True)

    def to_bytes(self) -> bytes:
        """The statement file's exact bytes: the canonical CBOR map of every field."""
        return bytes(cbor2.dumps({**self._unsigned_map(), "sig": self.signature}, canonical=True))

    @classmethod
    def from_bytes(cls, data: bytes) -> ReleaseStatement:
        """Read a statement file; ``bad_release`` for anything :meth:`to_bytes` would not write.

        Refused: more than :data:`MAX_STATEMENT_BYTES`, CBOR that is not one flat map of the
        statement's types, another format version, a missing or unknown key, a field out of its
        range, and any encoding other than the canonical one.  The signature is not checked here.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _bad(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) > MAX_STATEMENT_BYTES:
            raise _bad(f"{len(data)} bytes, more than the {MAX_STATEMENT_BYTES} a statement may have")
        fields = read_flat_map(data)
        if "v" in fields and fields["v"] != FORMAT_VERSION:
            raise _bad(
                f"format version {fields['v']!r}; this node reads format {FORMAT_VERSION} "
                "(a newer p2p-orchestrator may have written it: upgrade this one)"
            )
        missing = [key for key in _KEYS if key not in fields]
        unknown = sorted(key[:32] for key in fields if key not in _KEYS)
        if missing or unknown:
            raise _bad(f"missing key(s) {missing}, unknown key(s) {unknown}; expected exactly {list(_KEYS)}")
        sha256 = fields["sha256"]
        if type(sha256) is not bytes or len(sha256) != 32:
            raise _bad("sha256 must be 32 bytes")
        statement = cls(
            name=fields["name"],  # type: ignore[arg-type]  # __post_init__ checks every type
            version=fields["ver"],  # type: ignore[arg-type]
            archive_sha256=sha256.hex(),
            archive_size=fields["size"],  # type: ignore[arg-type]
            publisher_key=fields["key"],  # type: ignore[arg-type]
            issued_at=fields["iat"],  # type: ignore[arg-type]
            expires_at=fields["exp"],  # type: ignore[arg-type]
            signature=fields["sig"],  # type: ignore[arg-type]
        )
        if statement.to_bytes() != data:
            raise _bad("not in canonical CBOR form (shortest lengths, keys sorted), as to_bytes() writes it")
        return statement

    def verify_signature(self) -> None:
        """Check the signature against ``publisher_key``; ``bad_signature`` if it does not hold."""
        try:
            nacl.signing.VerifyKey(self.publisher_key).verify(self.signed_bytes(), self.signature)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise ReleaseError(
                f"the release statement of {self.describe()} has a signature that does not match its "
                f"contents and key {self.publisher_text}: it was altered or damaged after signing; "
                "ask the publisher for the original statement, or sign the archive again",
                code="bad_signature",
            ) from None
