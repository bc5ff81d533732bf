"""The on-disk layout of a partial transfer: creating it, and reading it back after a restart.

See :mod:`.partial` for the files and the rules that make every crash safe; this module holds
the format (file names, the ledger's records), the atomic creation of a transfer's directory,
and the slow path of reopening one: reading the stored manifest and ledger, and re-hashing what
the ledger claims.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from p2p_orchestrator._files import fsync_dir, remove_tree

from ..errors import ProtocolError, ServiceDistributionError
from ..wire import decode_payload, encode_payload
from ._constants import MAX_CHUNKS
from ._fs import pread_exact, write_file
from .bitfield import Bitfield
from .errors import PARTIAL_CORRUPT, fail, fail_storage
from .manifest import TransferManifest

__all__ = [
    "COMPLETE_FILE",
    "DATA_FILE",
    "LEDGER_FILE",
    "LEDGER_MAGIC",
    "MANIFEST_FILE",
    "RECORD_BYTES",
    "create_layout",
    "hash_file",
    "ledger_records",
    "read_ledger",
    "read_stored_manifest",
    "recover_layout",
    "reverify",
]

MANIFEST_FILE = "manifest"
DATA_FILE = "data"
LEDGER_FILE = "ledger"
COMPLETE_FILE = "complete"
LEDGER_MAGIC = b"P2POXL01"
RECORD_BYTES = 4
_READ_BYTES = 1024 * 1024
_NO_LIMIT = MAX_CHUNKS * 4 * 1024 * 1024  # stored manifests are re-checked, not re-limited


def create_layout(directory: Path, manifest: TransferManifest, *, fsync: bool) -> None:
    """Create an empty partial transfer in ``directory`` (which must not exist), atomically.

    The files are built in a temporary directory next to it, which is then renamed into place:
    the directory appears whole or not at all.  ``storage_failed`` if the disk refuses.
    """
    parent = directory.parent
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    except OSError as exc:
        fail_storage(exc, f"cannot create a partial transfer in {parent}: {exc.strerror or exc}")
    try:
        write_file(tmp / MANIFEST_FILE, encode_payload(manifest.to_wire()), fsync=fsync)
        write_file(tmp / LEDGER_FILE, LEDGER_MAGIC, fsync=fsync)
        fd = os.open(tmp / DATA_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, manifest.total_size)  # sparse: disk is used as chunks arrive
        finally:
            os.close(fd)
        if fsync:
            fsync_dir(tmp)
        os.rename(tmp, directory)
        if fsync:
            fsync_dir(parent)
    except OSError as exc:
        remove_tree(tmp)
        fail_storage(exc, f"cannot create the partial transfer {directory}: {exc.strerror or exc}")
    except BaseException:
        remove_tree(tmp)
        raise


def recover_layout(directory: Path, manifest: TransferManifest, *, fsync: bool) -> tuple[Bitfield, bool]:
    """Read back the partial transfer in ``directory``: the chunks that verify, and whether finished.

    A finished transfer (the ``complete`` marker, same manifest) is trusted without reading it.
    Otherwise every chunk the ledger claims is re-hashed, under ``manifest`` even if the stored
    manifest chunks the archive differently (a new chunk lying wholly inside verified old chunks
    is kept); the ledger (and the manifest, if it changed) are then rewritten to match.
    ``partial_corrupt`` if the directory is unreadable or holds another archive.
    """
    stored = read_stored_manifest(directory)
    if (stored.archive_hash, stored.total_size) != (manifest.archive_hash, manifest.total_size):
        fail(PARTIAL_CORRUPT, f"{directory} holds a partial transfer of another archive")
    data_path = directory / DATA_FILE
    try:
        if data_path.stat().st_size != manifest.total_size:
            fail(PARTIAL_CORRUPT, f"{data_path} does not have the archive's size")
        if stored == manifest and (directory / COMPLETE_FILE).exists():
            return Bitfield.full(manifest.chunk_count), True
        with contextlib.suppress(FileNotFoundError):
            (directory / COMPLETE_FILE).unlink()
        claimed = read_ledger(directory / LEDGER_FILE, stored.chunk_count)
        verified = reverify(data_path, stored, manifest, claimed)
        if stored != manifest:
            write_file(
                directory / MANIFEST_FILE, encode_payload(manifest.to_wire()), fsync=fsync, atomic=True
            )
        write_file(directory / LEDGER_FILE, LEDGER_MAGIC + ledger_records(verified), fsync=fsync, atomic=True)
    except OSError as exc:
        fail_storage(exc, f"cannot resume the partial transfer {directory}: {exc.strerror or exc}")
    return verified, False


def ledger_records(indices: list[int] | Bitfield) -> bytes:
    """The ledger records (4-byte big-endian indices) of ``indices``."""
    return b"".join(index.to_bytes(RECORD_BYTES, "big") for index in indices)


def read_stored_manifest(directory: Path) -> TransferManifest:
    try:
        raw = (directory / MANIFEST_FILE).read_bytes()
        return TransferManifest.from_wire(decode_payload(raw), max_total_bytes=_NO_LIMIT)
    except (OSError, ProtocolError, ServiceDistributionError) as exc:
        raise ServiceDistributionError(
            f"the manifest of the partial transfer {directory} is unreadable: {exc}", code=PARTIAL_CORRUPT
        ) from exc


def read_ledger(path: Path, count: int) -> Bitfield:
    """The chunks the ledger claims (a torn last record and out-of-range records are ignored)."""
    raw = path.read_bytes()
    if raw[: len(LEDGER_MAGIC)] != LEDGER_MAGIC:
        fail(PARTIAL_CORRUPT, f"{path} is not a transfer ledger")
    claimed = Bitfield(count)
    end = len(raw) - (len(raw) - len(LEDGER_MAGIC)) % RECORD_BYTES
    for offset in range(len(LEDGER_MAGIC), end, RECORD_BYTES):
        index = int.from_bytes(raw[offset : offset + RECORD_BYTES], "big")
        if index < count:
            claimed.add(index)
    return claimed


def reverify(
    data_path: Path, stored: TransferManifest, manifest: TransferManifest, claimed: Bitfield
) -> Bitfield:
    """Chunks of ``manifest`` whose bytes, within ``claimed`` chunks of ``stored``, still hash right."""
    verified = Bitfield(manifest.chunk_count)
    if stored == manifest:
        candidates: list[int] = list(claimed)
    else:
        candidates = [
            index
            for index in range(manifest.chunk_count)
            if _covered(stored, claimed, manifest.chunk_offset(index), manifest.chunk_length(index))
        ]
    fd = os.open(data_path, os.O_RDONLY)
    try:
        for index in candidates:
            data = pread_exact(fd, manifest.chunk_length(index), manifest.chunk_offset(index))
            if hashlib.sha256(data).digest() == manifest.chunk_hashes[index]:
                verified.add(index)
    finally:
        os.close(fd)
    return verified


def _covered(stored: TransferManifest, claimed: Bitfield, start: int, length: int) -> bool:
    first, last = start // stored.chunk_size, (start + length - 1) // stored.chunk_size
    return all(index in claimed for index in range(first, last + 1))


def hash_file(fd: int, size: int, digest: hashlib._Hash | None = None, offset: int = 0) -> str:
    """The sha256 of the file's first ``size`` bytes, in hex; ``digest`` (a ``hashlib.sha256()``)
    may hold its first ``offset`` bytes already, and only the rest is read."""
    digest = hashlib.sha256() if digest is None else digest
    while offset < size:
        data = pread_exact(fd, min(_READ_BYTES, size - offset), offset)
        digest.update(data)
        offset += len(data)
    return digest.hexdigest()
