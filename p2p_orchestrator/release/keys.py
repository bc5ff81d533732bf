"""A publisher's signing key, its key file, and signing an archive with it.

The key file (``p2p-orchestrator keygen -o FILE``) is three lines of ASCII text, mode 0600::

    p2p-orchestrator publisher key 1
    public ed25519:<base64 of the 32-byte public key>
    seed <base64 of the 32-byte Ed25519 seed>

The second line is there for people (``sed -n 2p FILE`` shows what to put in ``[publishers.*]``)
and is checked against the seed when the file is read.  A file that the group or others may
read is refused: anyone who reads it can sign releases in the publisher's name.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import nacl.signing

from p2p_orchestrator._files import ExposedFile, NotRegularFile, create_private, read_private
from p2p_orchestrator.archive import ArchiveLimits, unpack_archive
from p2p_orchestrator.errors import ReleaseError, ServiceInstallationError
from p2p_orchestrator.release._keytext import KEY_BYTES, parse_public_key, public_key_text
from p2p_orchestrator.release.statement import SIGNATURE_BYTES, ReleaseStatement

__all__ = ["KEY_FILE_HEADER", "PublisherKey", "sign_archive"]

KEY_FILE_HEADER = "p2p-orchestrator publisher key 1"
"""The first line of a key file (the ``1`` is the file format's version)."""
_MAX_KEY_FILE_BYTES = 1024


class PublisherKey:
    """An Ed25519 signing key that signs release statements.

    Its ``repr`` and ``str`` show only the public key; the seed never leaves the object except
    into a key file (:meth:`save`).
    """

    __slots__ = ("_signing_key",)

    def __init__(self, seed: bytes) -> None:
        """The key whose 32-byte Ed25519 seed is ``seed`` (:meth:`generate` makes a new one)."""
        if type(seed) is not bytes or len(seed) != KEY_BYTES:
            raise ReleaseError(f"an Ed25519 seed is {KEY_BYTES} bytes", code="bad_key_file")
        self._signing_key = nacl.signing.SigningKey(seed)

    @classmethod
    def generate(cls) -> PublisherKey:
        """A new random key (from the operating system's random source)."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return bytes(self._signing_key.verify_key)

    @property
    def public_text(self) -> str:
        """The public key as ``[publishers.*] public_key`` takes it: ``ed25519:<base64>``."""
        return public_key_text(self.public_key)

    def __repr__(self) -> str:
        return f"PublisherKey({self.public_text})"

    def sign(
        self,
        name: str,
        version: str,
        archive_sha256: str,
        archive_size: int,
        *,
        issued_at: int,
        expires_at: int | None,
    ) -> ReleaseStatement:
        """A statement, signed by this key, that the archive (sha256, size) is ``name`` ``version``.

        The fields are checked first (``bad_release``), so nothing malformed is ever signed.
        """
        unsigned = ReleaseStatement(
            name=name,
            version=version,
            archive_sha256=archive_sha256,
            archive_size=archive_size,
            publisher_key=self.public_key,
            issued_at=issued_at,
            expires_at=expires_at,
            signature=bytes(SIGNATURE_BYTES),
        )
        signature = self._signing_key.sign(unsigned.signed_bytes()).signature
        return replace(unsigned, signature=bytes(signature))

    def key_file_text(self) -> str:
        """The key file's contents (secret: they hold the seed)."""
        seed = base64.b64encode(bytes(self._signing_key)).decode("ascii")
        return f"{KEY_FILE_HEADER}\npublic {self.public_text}\nseed {seed}\n"

    @classmethod
    def load(cls, path: Path) -> PublisherKey:
        """Read a key file that :meth:`save` wrote.

        Refused: a missing or unreadable file (``key_unreadable``), one the group or others may
        read or write (``insecure_key``, with the ``chmod`` that fixes it), anything but a key
        file (``bad_key_file``).
        """
        path = Path(path)
        try:
            data = read_private(path, _MAX_KEY_FILE_BYTES)
        except NotRegularFile:
            raise ReleaseError(f"publisher key {path} is not a regular file", code="bad_key_file") from None
        except ExposedFile as exc:
            raise ReleaseError(
                f"publisher key {path} may be read or written by other users (mode {exc.mode:04o}); "
                "anyone who reads it can sign releases in your name: "
                f"run `chmod 600 {path}` (and if others may have read it, make a new key with "
                "`p2p-orchestrator keygen` and replace the old one in every node's [publishers.*])",
                code="insecure_key",
            ) from None
        except FileNotFoundError:
            raise ReleaseError(
                f"no publisher key at {path}: make one with `p2p-orchestrator keygen -o {path}`",
                code="key_unreadable",
            ) from None
        except OSError as exc:
            raise ReleaseError(f"cannot read publisher key {path}: {exc}", code="key_unreadable") from exc
        key = cls._parse(data)
        if key is None:
            raise ReleaseError(
                f"{path} is not a publisher key file (written by `p2p-orchestrator keygen`); "
                "restore it from a backup, or make a new key and trust it in place of the old one",
                code="bad_key_file",
            )
        return key

    @classmethod
    def _parse(cls, data: bytes) -> PublisherKey | None:
        """The key in a key file's bytes, or ``None`` if they are anything else."""
        if len(data) > _MAX_KEY_FILE_BYTES or not data.isascii():
            return None
        lines = data.decode("ascii").split("\n")
        if len(lines) != 4 or lines[0] != KEY_FILE_HEADER or lines[3] != "":
            return None
        public, seed = lines[1], lines[2]
        if not public.startswith("public ") or not seed.startswith("seed "):
            return None
        try:
            public_raw = parse_public_key(public.removeprefix("public "))
            seed_raw = base64.b64decode(seed.removeprefix("seed "), validate=True)
        except (binascii.Error, ReleaseError):
            return None
        if len(seed_raw) != KEY_BYTES:
            return None
        key = cls(seed_raw)
        return key if key.public_key == public_raw else None

    def save(self, path: Path) -> None:
        """Write the key file at ``path``, mode 0600; ``key_exists`` if anything is there already.

        The file appears whole or not at all (written beside it, then linked into place), and an
        existing file is never replaced: nodes trust the key it holds.
        """
        path = Path(path)
        if path.exists() or path.is_symlink():
            raise _key_exists(path)
        try:
            create_private(path, self.key_file_text().encode("ascii"))
        except FileExistsError:
            raise _key_exists(path) from None
        except OSError as exc:
            raise ReleaseError(f"cannot write publisher key {path}: {exc}", code="write_failed") from exc


def _key_exists(path: Path) -> ReleaseError:
    return ReleaseError(
        f"{path} already exists; a publisher key is never overwritten (nodes may trust it): "
        "choose another path, or move the old file away yourself",
        code="key_exists",
    )


def sign_archive(
    archive: Path,
    key: PublisherKey,
    *,
    now: int,
    expires_in: int | None,
    limits: ArchiveLimits | None = None,
) -> ReleaseStatement:
    """Sign ``archive``: its sha256 and size, and the name and version its manifest gives.

    The archive is checked exactly as an install checks it (unpacked into a temporary directory
    under ``limits``), so a bad archive is refused with the archive's own code (``not_gzip``,
    ``missing_main``, ...) and never signed.  The statement is issued at ``now`` and expires
    ``expires_in`` seconds later (``None``: never).
    """
    if expires_in is not None and (type(expires_in) is not int or expires_in <= 0):
        raise ReleaseError(f"expires_in must be a positive number of seconds, got {expires_in!r}")
    archive = Path(archive)
    try:
        with open(archive, "rb") as source, tempfile.TemporaryDirectory(prefix="p2p-sign-") as tree:
            size = os.fstat(source.fileno()).st_size
            unpacked = unpack_archive(source, Path(tree), limits=limits or ArchiveLimits())
    except ServiceInstallationError as exc:
        raise ServiceInstallationError(
            f"{archive} is not a valid service archive, so it is not signed: {exc.message}", code=exc.code
        ) from exc
    except OSError as exc:
        raise ServiceInstallationError(f"cannot read {archive}: {exc}", code="read_failed") from exc
    if unpacked.archive_size != size:
        raise ServiceInstallationError(
            f"{archive} changed while it was read ({size} bytes, then {unpacked.archive_size}); "
            "sign it again once it is complete",
            code="read_failed",
        )
    return key.sign(
        unpacked.manifest.name,
        str(unpacked.manifest.version),
        unpacked.archive_hash,
        unpacked.archive_size,
        issued_at=now,
        expires_at=None if expires_in is None else now + expires_in,
    )
