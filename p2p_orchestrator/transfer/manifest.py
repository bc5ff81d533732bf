"""The transfer manifest: what an archive is, chunk by chunk.

A manifest describes one archive file cut into fixed-size chunks (the last one may be
shorter)::

    archive_hash  sha256 of the whole file, hex -- the archive's public identity, as the
                  spec's results report it and as the store names its cache
    total_size    bytes in the file (1 .. the configured limit)
    chunk_size    bytes per chunk (64 KiB .. 4 MiB); chunk i covers
                  [i * chunk_size, min((i + 1) * chunk_size, total_size))
    chunk_hashes  sha256 of each chunk, ceil(total_size / chunk_size) of them
    root          sha256 over all of the above (see :func:`compute_root`)

Why a flat list of chunk hashes and not a Merkle tree: the receiver gets the whole list in the
``offer`` (32 bytes per chunk: 8 KiB for a 256 MiB archive in 1 MiB chunks, at most 2 MiB), so
every chunk can be checked the moment it arrives by a single lookup, from whichever peer it
comes.  A Merkle root pays off only when a receiver must check chunks *without* holding the
list (BitTorrent v2 and iroh fetch proofs alongside each piece for that); here it would add
proof bytes to every chunk and code to check them, for nothing.  The root is still worth having:
it binds the geometry and every hash into one value, so two peers agree on "the same manifest"
by comparing 32 bytes, a manifest damaged on disk or in transit is detected before any chunk is
trusted, and a later swarm can name the exact chunking its peers serve.

The whole-file ``archive_hash`` is checked once more when the last chunk is in: a manifest whose
chunk hashes describe some other file is caught there (``archive_hash_mismatch``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_orchestrator._patterns import HEX_SHA256

from ._constants import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_TRANSFER_BYTES,
    HASH_BYTES,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MIN_CHUNK_SIZE,
)
from .errors import (
    BAD_MANIFEST,
    CHUNK_HASH_MISMATCH,
    CHUNK_OUT_OF_RANGE,
    CHUNK_SIZE_MISMATCH,
    TRANSFER_TOO_LARGE,
    fail,
    fail_storage,
)

__all__ = ["TransferManifest", "build_manifest", "compute_root"]

_ROOT_DOMAIN = b"p2p-orchestrator/transfer/manifest-root/1\x00"
_FIELDS = frozenset({"archive_hash", "total_size", "chunk_size", "chunk_hashes", "root"})


def compute_root(archive_hash: str, total_size: int, chunk_size: int, chunk_hashes: bytes) -> bytes:
    """The manifest root: sha256 of a domain tag, the archive hash, both sizes and every chunk hash.

    ``sha256(b"p2p-orchestrator/transfer/manifest-root/1\\0" || archive_hash (32 raw bytes) ||
    total_size (u64 BE) || chunk_size (u64 BE) || chunk_hashes (concatenated))``.
    """
    digest = hashlib.sha256(_ROOT_DOMAIN)
    digest.update(bytes.fromhex(archive_hash))
    digest.update(total_size.to_bytes(8, "big"))
    digest.update(chunk_size.to_bytes(8, "big"))
    digest.update(chunk_hashes)
    return digest.digest()


def _chunk_count(total_size: int, chunk_size: int) -> int:
    return -(-total_size // chunk_size)


@dataclass(frozen=True, slots=True)
class TransferManifest:
    """An archive's size, chunking and hashes; immutable and always self-consistent.

    Building one checks every rule of the module docstring, so an inconsistent manifest cannot
    exist: ``ServiceDistributionError`` with ``bad_manifest``, or ``transfer_too_large`` for
    more than :data:`MAX_CHUNKS` chunks.  :meth:`from_wire` also applies the configured size cap.
    """

    archive_hash: str
    total_size: int
    chunk_size: int
    chunk_hashes: tuple[bytes, ...]
    root: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.archive_hash, str) or HEX_SHA256.fullmatch(self.archive_hash) is None:
            fail(BAD_MANIFEST, f"archive_hash must be 64 lowercase hex digits, got {self.archive_hash!r:.80}")
        if type(self.total_size) is not int or self.total_size < 1:
            fail(BAD_MANIFEST, f"total_size must be a positive integer, got {self.total_size!r:.40}")
        if type(self.chunk_size) is not int or not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            fail(
                BAD_MANIFEST,
                f"chunk_size must be an integer in {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}, got {self.chunk_size!r:.40}",
            )
        count = _chunk_count(self.total_size, self.chunk_size)
        if count > MAX_CHUNKS:
            fail(TRANSFER_TOO_LARGE, f"{count} chunks is more than a manifest may list ({MAX_CHUNKS})")
        hashes = self.chunk_hashes
        if not isinstance(hashes, tuple) or len(hashes) != count:
            got = len(hashes) if isinstance(hashes, tuple) else type(hashes).__name__
            fail(
                BAD_MANIFEST,
                f"{self.total_size} bytes in chunks of {self.chunk_size} need {count} hashes, got {got}",
            )
        if not all(type(h) is bytes and len(h) == HASH_BYTES for h in hashes):
            fail(BAD_MANIFEST, f"every chunk hash must be {HASH_BYTES} bytes")
        expected = compute_root(self.archive_hash, self.total_size, self.chunk_size, b"".join(hashes))
        if type(self.root) is not bytes or self.root != expected:
            fail(BAD_MANIFEST, "the manifest root does not match its chunk hashes and sizes")

    # -- geometry ----------------------------------------------------------------------------

    @property
    def chunk_count(self) -> int:
        """How many chunks the archive has (at least 1)."""
        return len(self.chunk_hashes)

    def chunk_offset(self, index: int) -> int:
        """Where chunk ``index`` starts in the file."""
        return self._checked(index) * self.chunk_size

    def chunk_length(self, index: int) -> int:
        """How many bytes chunk ``index`` has (``chunk_size``, or less for the last one)."""
        start = self._checked(index) * self.chunk_size
        return min(self.chunk_size, self.total_size - start)

    def _checked(self, index: int) -> int:
        if type(index) is not int or not 0 <= index < len(self.chunk_hashes):
            fail(CHUNK_OUT_OF_RANGE, f"chunk {index!r:.40} is outside 0..{len(self.chunk_hashes) - 1}")
        return index

    def check_chunk(self, index: int, data: bytes) -> None:
        """Raise unless ``data`` is exactly chunk ``index`` (range, then length, then sha256).

        Codes: ``chunk_out_of_range``, ``chunk_size_mismatch``, ``chunk_hash_mismatch``.
        """
        length = self.chunk_length(index)
        if len(data) != length:
            fail(CHUNK_SIZE_MISMATCH, f"chunk {index} must be {length} bytes, got {len(data)}")
        if hashlib.sha256(data).digest() != self.chunk_hashes[index]:
            fail(CHUNK_HASH_MISMATCH, f"chunk {index} does not match its sha256 in the manifest")

    # -- wire form ---------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """The manifest as a CBOR-able map; the hashes travel as one byte string, 32 bytes each."""
        return {
            "archive_hash": self.archive_hash,
            "total_size": self.total_size,
            "chunk_size": self.chunk_size,
            "chunk_hashes": b"".join(self.chunk_hashes),
            "root": self.root,
        }

    @classmethod
    def from_wire(cls, obj: Any, *, max_total_bytes: int = DEFAULT_MAX_TRANSFER_BYTES) -> TransferManifest:
        """Rebuild a manifest from :meth:`to_wire`'s map, refusing anything not exactly right.

        ``bad_manifest`` for a missing or extra field, a wrong type or an inconsistency;
        ``transfer_too_large`` for an archive over ``max_total_bytes``.
        """
        if not isinstance(obj, dict) or obj.keys() != _FIELDS:
            keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            fail(BAD_MANIFEST, f"a manifest is a map of exactly {sorted(_FIELDS)}, got {keys!s:.200}")
        total, joined = obj["total_size"], obj["chunk_hashes"]
        if type(total) is int and total > max_total_bytes:
            fail(TRANSFER_TOO_LARGE, f"the archive has {total} bytes; the limit is {max_total_bytes}")
        if type(joined) is not bytes or len(joined) % HASH_BYTES:
            fail(BAD_MANIFEST, f"chunk_hashes must be a byte string of {HASH_BYTES}-byte hashes")
        hashes = tuple(joined[i : i + HASH_BYTES] for i in range(0, len(joined), HASH_BYTES))
        return cls(obj["archive_hash"], total, obj["chunk_size"], hashes, obj["root"])


def build_manifest(
    path: Path,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    max_total_bytes: int = DEFAULT_MAX_TRANSFER_BYTES,
) -> TransferManifest:
    """Describe the file at ``path``, reading it once, one chunk in memory at a time (blocking).

    ``transfer_too_large`` as soon as the file grows past ``max_total_bytes``; ``bad_manifest``
    for an empty file or a ``chunk_size`` out of bounds; ``storage_failed`` if reading fails.
    """
    if type(chunk_size) is not int or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        fail(BAD_MANIFEST, f"chunk_size must be an integer in {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
    whole = hashlib.sha256()
    hashes: list[bytes] = []
    total = 0
    buffer = bytearray(chunk_size)
    try:
        with open(path, "rb", buffering=0) as source, memoryview(buffer) as view:
            while True:
                filled = 0
                while filled < chunk_size:
                    got = source.readinto(view[filled:])
                    if not got:
                        break
                    filled += got
                if not filled:
                    break
                total += filled
                if total > max_total_bytes:
                    fail(TRANSFER_TOO_LARGE, f"{path} is larger than the limit of {max_total_bytes} bytes")
                with view[:filled] as part:
                    whole.update(part)
                    hashes.append(hashlib.sha256(part).digest())
                if filled < chunk_size:
                    break
    except OSError as exc:
        fail_storage(exc, f"cannot read {path}: {exc.strerror or exc}")
    archive_hash = whole.hexdigest()
    joined = b"".join(hashes)
    return TransferManifest(
        archive_hash, total, chunk_size, tuple(hashes), compute_root(archive_hash, total, chunk_size, joined)
    )
