"""The manifest (sizes, chunk hashes, root) and the bitfield: building, wire form, strict checks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator.errors import ServiceDistributionError
from p2p_orchestrator.transfer import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MIN_CHUNK_SIZE,
    Bitfield,
    TransferManifest,
    build_manifest,
    compute_root,
)
from p2p_orchestrator.wire import decode_payload, encode_payload
from tests.transfer.support import CHUNK, archive, write_archive


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (1, CHUNK),
        (CHUNK - 1, CHUNK),
        (CHUNK, CHUNK),
        (CHUNK + 1, CHUNK),
        (7 * CHUNK, CHUNK),
        (3 * CHUNK + 5, 2 * CHUNK),
    ],
)
def test_build_manifest_describes_the_file(tmp_path: Path, size: int, chunk: int) -> None:
    _, data, manifest = archive(tmp_path, size, chunk=chunk)
    assert manifest.archive_hash == hashlib.sha256(data).hexdigest()
    assert manifest.total_size == size
    assert manifest.chunk_size == chunk
    assert manifest.chunk_count == -(-size // chunk)
    for index in range(manifest.chunk_count):
        piece = data[
            manifest.chunk_offset(index) : manifest.chunk_offset(index) + manifest.chunk_length(index)
        ]
        assert manifest.chunk_hashes[index] == hashlib.sha256(piece).digest()
        manifest.check_chunk(index, piece)
    assert sum(manifest.chunk_length(i) for i in range(manifest.chunk_count)) == size
    assert manifest.root == compute_root(manifest.archive_hash, size, chunk, b"".join(manifest.chunk_hashes))


def test_default_chunk_size_is_within_bounds() -> None:
    assert MIN_CHUNK_SIZE <= DEFAULT_CHUNK_SIZE <= MAX_CHUNK_SIZE


def test_wire_round_trip(tmp_path: Path) -> None:
    _, _, manifest = archive(tmp_path)
    wire = decode_payload(encode_payload(manifest.to_wire()))
    assert TransferManifest.from_wire(wire) == manifest
    assert len(wire["chunk_hashes"]) == 32 * manifest.chunk_count


def _wire(tmp_path: Path) -> dict[str, Any]:
    return archive(tmp_path, 3 * CHUNK + 10)[2].to_wire()


def _edit(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    wire = _wire(tmp_path)
    for key, value in changes.items():
        if value is ...:
            del wire[key]
        else:
            wire[key] = value
    return wire


@pytest.mark.parametrize(
    "changes",
    [
        {"root": ...},
        {"extra": 1},
        {"archive_hash": "AB" * 32},
        {"archive_hash": "ab" * 31},
        {"archive_hash": 5},
        {"total_size": 0},
        {"total_size": True},
        {"total_size": "10"},
        {"total_size": 3 * CHUNK + 11},  # the root no longer matches
        {"total_size": 5 * CHUNK},  # needs more hashes
        {"total_size": 2 * CHUNK},  # needs fewer hashes
        {"chunk_size": MIN_CHUNK_SIZE - 1},
        {"chunk_size": MAX_CHUNK_SIZE + 1},
        {"chunk_size": 1.5},
        {"chunk_hashes": b"\x00" * 33},
        {"chunk_hashes": [b"\x00" * 32] * 4},
        {"chunk_hashes": b"\x00" * 128},  # right count, wrong hashes: root mismatch
        {"root": b"\x00" * 32},
        {"root": "00" * 32},
    ],
)
def test_from_wire_refuses_inconsistent_manifests(tmp_path: Path, changes: dict[str, Any]) -> None:
    with pytest.raises(ServiceDistributionError) as info:
        TransferManifest.from_wire(_edit(tmp_path, **changes))
    assert info.value.code == "bad_manifest"


def test_from_wire_refuses_non_maps() -> None:
    for obj in (None, [], "manifest", 5):
        with pytest.raises(ServiceDistributionError, match="exactly"):
            TransferManifest.from_wire(obj)


def test_size_limits(tmp_path: Path) -> None:
    wire = _wire(tmp_path)
    with pytest.raises(ServiceDistributionError) as info:
        TransferManifest.from_wire(wire, max_total_bytes=3 * CHUNK)
    assert info.value.code == "transfer_too_large"
    assert TransferManifest.from_wire(wire, max_total_bytes=3 * CHUNK + 10).total_size == 3 * CHUNK + 10
    count = MAX_CHUNKS + 1
    hashes = (b"\x00" * 32,) * count
    with pytest.raises(ServiceDistributionError) as info:
        TransferManifest("0" * 64, count * CHUNK, CHUNK, hashes, b"")
    assert info.value.code == "transfer_too_large"


def test_constructor_checks_like_from_wire(tmp_path: Path) -> None:
    m = archive(tmp_path)[2]
    with pytest.raises(ServiceDistributionError, match="hashes"):
        TransferManifest(m.archive_hash, m.total_size, m.chunk_size, m.chunk_hashes[:-1], m.root)
    with pytest.raises(ServiceDistributionError, match="32 bytes"):
        TransferManifest(m.archive_hash, m.total_size, m.chunk_size, (b"x",) * m.chunk_count, m.root)


def test_check_chunk_codes(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path, 2 * CHUNK + 7)
    for index, piece, code in [
        (3, b"x", "chunk_out_of_range"),
        (-1, b"x", "chunk_out_of_range"),
        (0, data[: CHUNK - 1], "chunk_size_mismatch"),
        (2, data[2 * CHUNK :] + b"!", "chunk_size_mismatch"),
        (1, data[:CHUNK], "chunk_hash_mismatch"),
    ]:
        with pytest.raises(ServiceDistributionError) as info:
            manifest.check_chunk(index, piece)
        assert info.value.code == code
    assert manifest.chunk_length(2) == 7


def test_build_manifest_refusals(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ServiceDistributionError) as info:
        build_manifest(empty)
    assert info.value.code == "bad_manifest"
    big = tmp_path / "big"
    write_archive(big, 3 * CHUNK)
    with pytest.raises(ServiceDistributionError) as info:
        build_manifest(big, CHUNK, max_total_bytes=2 * CHUNK + 1)
    assert info.value.code == "transfer_too_large"
    with pytest.raises(ServiceDistributionError) as info:
        build_manifest(big, 1000)
    assert info.value.code == "bad_manifest"
    with pytest.raises(ServiceDistributionError) as info:
        build_manifest(tmp_path / "missing")
    assert info.value.code == "storage_failed"
    assert isinstance(info.value.__cause__, FileNotFoundError)


# -- bitfield -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 8, 9, 16, 100])
def test_bitfield_basics(size: int) -> None:
    field = Bitfield(size)
    assert field.count == 0 and field.missing() == list(range(size))
    assert field.add(0) and not field.add(0)
    field.add(size - 1)
    assert list(field) == sorted({0, size - 1})
    assert Bitfield.from_bytes(field.to_bytes(), size) == field
    full = Bitfield.full(size)
    assert full.is_full and full.count == size and full.missing() == []
    assert Bitfield.from_bytes(full.to_bytes(), size) == full
    assert (full.issuperset(field) and not field.issuperset(full)) or (size == 1 and field.is_full)
    assert len(field.to_bytes()) == (size + 7) // 8
    with pytest.raises(IndexError):
        field.add(size)
    assert size not in field and -1 not in field and "0" not in field


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 100])
def test_bitfield_merge_adds_and_returns_the_new_indices(size: int) -> None:
    mine = Bitfield.from_indices(size, range(0, size, 3))
    theirs = Bitfield.from_indices(size, range(0, size, 2))
    expected = sorted(set(range(0, size, 2)) - set(range(0, size, 3)))
    assert mine.merge(theirs) == expected
    assert list(mine) == sorted(set(range(0, size, 3)) | set(range(0, size, 2)))
    assert mine.count == len(list(mine)) and mine.issuperset(theirs)
    assert Bitfield.from_bytes(mine.to_bytes(), size) == mine
    assert mine.merge(theirs) == [] and mine.merge(Bitfield(size)) == []
    with pytest.raises(ValueError, match="cannot merge"):
        mine.merge(Bitfield(size + 1))


def test_bitfield_wire_form_is_msb_first_and_strict() -> None:
    assert Bitfield.from_indices(10, [0, 9]).to_bytes() == b"\x80\x40"
    for data, size in [(b"\x80", 10), (b"\x80\x00\x00", 10), (b"\x80\x20", 10), (b"\x01", 7)]:
        with pytest.raises(ServiceDistributionError) as info:
            Bitfield.from_bytes(data, size)
        assert info.value.code == "bad_bitfield"
    assert not Bitfield(3).issuperset(Bitfield(4))
    copy = Bitfield.from_indices(4, [1])
    other = copy.copy()
    other.add(2)
    assert 2 not in copy and 2 in other
