"""Partial transfers on disk: verify before write, resume after a restart, finish, and the store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2p_orchestrator.errors import ServiceDistributionError
from p2p_orchestrator.transfer import PartialTransfer, _layout, build_manifest
from tests.transfer.support import CHUNK, archive, lying_manifest, store


def chunk_of(data: bytes, index: int, chunk: int = CHUNK) -> bytes:
    return data[index * chunk : (index + 1) * chunk]


def code_of(info: pytest.ExceptionInfo[ServiceDistributionError]) -> str:
    return info.value.code


def test_write_verifies_before_writing(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    with store(tmp_path).open(manifest) as partial:
        assert partial.missing() == list(range(manifest.chunk_count))
        assert partial.write_chunk(1, chunk_of(data, 1))
        assert not partial.write_chunk(1, chunk_of(data, 1))
        for index, piece, code in [
            (2, chunk_of(data, 3), "chunk_hash_mismatch"),
            (2, chunk_of(data, 2)[:-1], "chunk_size_mismatch"),
            (2, chunk_of(data, 2) + b"x", "chunk_size_mismatch"),
            (99, b"x", "chunk_out_of_range"),
        ]:
            with pytest.raises(ServiceDistributionError) as info:
                partial.write_chunk(index, piece)
            assert code_of(info) == code
        on_disk = partial.data_path.read_bytes()
        assert on_disk[2 * CHUNK : 3 * CHUNK] == bytes(CHUNK)  # the refused chunk was not written
        assert on_disk[CHUNK : 2 * CHUNK] == chunk_of(data, 1)
        assert partial.missing() == [0, *range(2, manifest.chunk_count)]
        assert partial.verified_bytes == CHUNK and partial.has_chunk(1) and not partial.has_chunk(0)
        assert partial.read_chunk(1) == chunk_of(data, 1)
        with pytest.raises(ServiceDistributionError) as info:
            partial.read_chunk(0)
        assert code_of(info) == "chunk_unavailable"


def test_data_file_is_sparse_and_preallocated(tmp_path: Path) -> None:
    _, _, manifest = archive(tmp_path, 40 * CHUNK)
    with store(tmp_path).open(manifest) as partial:
        stat = partial.data_path.stat()
        assert stat.st_size == manifest.total_size
        assert stat.st_blocks * 512 < manifest.total_size // 4


def test_finish_checks_the_whole_file(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    partials = store(tmp_path)
    partial = partials.open(manifest)
    with pytest.raises(ServiceDistributionError) as info:
        partial.finish()
    assert code_of(info) == "transfer_incomplete"
    for index in reversed(range(manifest.chunk_count)):
        partial.write_chunk(index, chunk_of(data, index))
    assert partial.is_complete and not partial.is_finished
    assert not partials.has_archive(manifest.archive_hash)
    path = partial.finish()
    assert path.read_bytes() == data and partial.is_finished
    assert partial.finish() == path
    assert partials.has_archive(manifest.archive_hash)
    assert partials.archive_path(manifest.archive_hash) == path
    partial.close()
    again = partials.open(manifest)  # a finished transfer reopens finished, without re-hashing
    assert again.is_finished and again.finish() == path
    again.discard()
    assert not path.exists() and not partials.has_archive(manifest.archive_hash)


def test_a_manifest_that_lies_about_the_archive_is_caught_at_finish(tmp_path: Path) -> None:
    _, data, _ = archive(tmp_path)
    manifest = lying_manifest(data, CHUNK, "ab" * 32)
    partial = store(tmp_path).open(manifest)
    for index in range(manifest.chunk_count):
        partial.write_chunk(index, chunk_of(data, index))
    with pytest.raises(ServiceDistributionError) as info:
        partial.finish()
    assert code_of(info) == "archive_hash_mismatch"
    assert partial.closed and partial.directory is not None and not partial.directory.exists()


@pytest.mark.parametrize("late", [None, 1])
def test_chunks_in_order_are_hashed_as_written_not_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: int | None
) -> None:
    _, data, manifest = archive(tmp_path)
    assert manifest.chunk_count >= 3
    read: list[int] = []
    original = _layout.pread_exact

    def pread_exact(fd: int, n: int, offset: int) -> bytes:
        read.append(n)
        return original(fd, n, offset)

    monkeypatch.setattr(_layout, "pread_exact", pread_exact)
    indices = list(range(manifest.chunk_count))
    if late is not None:
        indices.append(indices.pop(late))  # chunk 1 last: chunks 0 and 1 are hashed as they come
    partial = store(tmp_path).open(manifest)
    for index in indices:
        partial.write_chunk(index, chunk_of(data, index))
    assert partial.finish().read_bytes() == data
    assert sum(read) == (0 if late is None else len(data) - 2 * CHUNK)  # read back: from chunk 2 on
    partial.discard()


def test_resume_keeps_verified_chunks(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    with store(tmp_path).open(manifest) as partial:
        for index in (0, 2, 3):
            partial.write_chunk(index, chunk_of(data, index))
    with store(tmp_path).open(manifest) as resumed:  # a new store: a restarted node
        assert list(resumed.have()) == [0, 2, 3]
        assert resumed.verified_bytes == 3 * CHUNK


def test_resume_after_a_crash_without_close(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    directory = tmp_path / "p" / manifest.archive_hash
    directory.parent.mkdir()
    crashed = PartialTransfer.create(directory, manifest, fsync=True, sync_bytes=1 << 40)
    for index in (1, 4):
        crashed.write_chunk(index, chunk_of(data, index))
    # never closed nor synced: what the OS has is what a killed process leaves
    resumed = PartialTransfer.resume(directory, manifest, fsync=False)
    assert list(resumed.have()) == [1, 4]
    resumed.close()
    crashed.close()


def test_resume_rechecks_what_the_ledger_claims(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    with store(tmp_path).open(manifest) as partial:
        for index in (0, 1, 2):
            partial.write_chunk(index, chunk_of(data, index))
        directory, data_path = partial.directory, partial.data_path
    assert directory is not None
    ledger = directory / "ledger"
    with open(ledger, "ab") as file:
        file.write((4).to_bytes(4, "big"))  # a claim whose data never reached the disk
        file.write((999).to_bytes(4, "big"))  # out of range
        file.write(b"\x00\x00")  # a torn last record
    with open(data_path, "r+b") as file:  # chunk 1 damaged on disk after it was verified
        file.seek(CHUNK + 10)
        file.write(b"\xff")
    with store(tmp_path).open(manifest) as resumed:
        assert list(resumed.have()) == [0, 2]
    assert ledger.read_bytes() == b"P2POXL01" + (0).to_bytes(4, "big") + (2).to_bytes(4, "big")


def test_resume_under_another_chunking_keeps_covered_chunks(tmp_path: Path) -> None:
    path, data, small = archive(tmp_path, 8 * CHUNK + 100)
    with store(tmp_path).open(small) as partial:
        for index in (0, 1, 2, 5, 8):
            partial.write_chunk(index, chunk_of(data, index))
    big = build_manifest(path, 2 * CHUNK)
    with store(tmp_path).open(big) as resumed:
        # big chunk i covers small chunks 2i and 2i+1; the last big chunk is small chunk 8 alone
        assert list(resumed.have()) == [0, 4]
        assert resumed.manifest == big
    with store(tmp_path).open(big) as again:
        assert list(again.have()) == [0, 4]


def test_unreadable_partials_start_afresh(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    partials = store(tmp_path)
    with partials.open(manifest) as partial:
        partial.write_chunk(0, chunk_of(data, 0))
        directory = partial.directory
    assert directory is not None
    (directory / "manifest").write_bytes(b"garbage")
    with partials.open(manifest) as fresh:
        assert fresh.have().count == 0
    (directory / "ledger").write_bytes(b"not a ledger")
    with partials.open(manifest) as fresh:
        assert fresh.have().count == 0
    (directory / "data").write_bytes(b"short")
    with partials.open(manifest) as fresh:
        assert fresh.have().count == 0 and fresh.data_path.stat().st_size == manifest.total_size


def test_fsync_path(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    with store(tmp_path, fsync=True, sync_bytes=CHUNK).open(manifest) as partial:
        for index in range(manifest.chunk_count):
            partial.write_chunk(index, chunk_of(data, index))
        assert partial.finish().read_bytes() == data


# -- the store ------------------------------------------------------------------------------


def test_one_open_transfer_per_archive(tmp_path: Path) -> None:
    _, _, manifest = archive(tmp_path)
    partials = store(tmp_path)
    partial = partials.open(manifest)
    with pytest.raises(ServiceDistributionError) as info:
        partials.open(manifest)
    assert code_of(info) == "transfer_in_progress"
    with pytest.raises(ServiceDistributionError):
        partials.remove(manifest.archive_hash)
    assert set(partials.open_transfers) == {manifest.archive_hash}
    partial.close()
    partial.close()
    assert partials.open_transfers == {}
    assert partials.remove(manifest.archive_hash) and not partials.remove(manifest.archive_hash)
    assert not partials.remove("not a hash")


def test_dedup_against_the_archive_cache(tmp_path: Path) -> None:
    _, data, manifest = archive(tmp_path)
    cache = tmp_path / "home" / "archives"
    cache.mkdir(parents=True)
    partials = store(tmp_path, archive_cache=cache)
    assert not partials.has_archive(manifest.archive_hash)
    cached = cache / f"{manifest.archive_hash}.tar.gz"
    cached.write_bytes(data)
    assert (
        partials.has_archive(manifest.archive_hash) and partials.archive_path(manifest.archive_hash) == cached
    )
    assert not partials.has_archive("../" + manifest.archive_hash)
    with partials.open(manifest) as borrowed:
        assert borrowed.is_borrowed and borrowed.is_finished and borrowed.is_complete
        assert borrowed.missing() == [] and borrowed.finish() == cached
        assert borrowed.read_chunk(1) == chunk_of(data, 1)
        assert not borrowed.write_chunk(0, chunk_of(data, 0))
    partials.open(manifest).discard()
    assert cached.read_bytes() == data  # never deleted


def test_a_partial_of_an_installed_archive_is_removed_at_start_up_and_collection(tmp_path: Path) -> None:
    """A node killed after installing a received archive, before discarding its partial, leaves both.

    The partial copy is of no use once the store's cache has the archive: the next partial store
    on that home removes it (not only the next transfer of that very archive), and so does a
    collection (e.g. after a local install of an archive a cut transfer had begun).
    """
    _, data, manifest = archive(tmp_path)
    cache = tmp_path / "home" / "archives"
    cache.mkdir(parents=True)
    partials = store(tmp_path, archive_cache=cache)
    with partials.open(manifest) as partial:
        for index in range(manifest.chunk_count):
            partial.write_chunk(index, chunk_of(data, index))
        partial.finish()
    _, other_data, other = archive(tmp_path, seed=1)
    with partials.open(other) as partial:  # half received, its archive not installed: kept
        partial.write_chunk(0, chunk_of(other_data, 0))
    (cache / f"{manifest.archive_hash}.tar.gz").write_bytes(data)  # installed; then the kill
    directory = partials.root / manifest.archive_hash
    assert directory.is_dir()
    reopened = store(tmp_path, archive_cache=cache)
    assert not directory.exists()
    assert [info.archive_hash for info in reopened.entries()] == [other.archive_hash]
    (cache / f"{other.archive_hash}.tar.gz").write_bytes(other_data)  # installed from a file
    assert reopened.collect() == [other.archive_hash]
    assert reopened.entries() == []


def test_size_limits(tmp_path: Path) -> None:
    _, _, manifest = archive(tmp_path, 10 * CHUNK)
    for kwargs in ({"max_transfer_bytes": 10 * CHUNK - 1}, {"max_total_bytes": 10 * CHUNK - 1}):
        with pytest.raises(ServiceDistributionError) as info:
            store(tmp_path, **kwargs).open(manifest)
        assert code_of(info) == "transfer_too_large"


def test_collect_by_age_and_size_oldest_first(tmp_path: Path) -> None:
    manifests = [archive(tmp_path, 4 * CHUNK, seed=seed)[2] for seed in range(4)]
    now = [1_000_000.0]
    partials = store(tmp_path, max_total_bytes=13 * CHUNK, max_age=3600, clock=lambda: now[0])
    for age, manifest in zip((100, 50, 10), manifests[:3], strict=True):
        partials.open(manifest).close()
        directory = partials.root / manifest.archive_hash
        for file in directory.iterdir():
            os.utime(file, (now[0] - age, now[0] - age))
    assert partials.usage() == 12 * CHUNK
    assert [info.archive_hash for info in partials.entries()] == [m.archive_hash for m in manifests[:3]]
    # the fourth does not fit in 13 chunks: the oldest goes
    fourth = partials.open(manifests[3])
    assert {info.archive_hash for info in partials.entries()} == {m.archive_hash for m in manifests[1:]}
    # age: move time on; the open one survives, the idle ones expire
    now[0] += 7200
    assert sorted(partials.collect()) == sorted(m.archive_hash for m in manifests[1:3])
    assert [info.archive_hash for info in partials.entries()] == [manifests[3].archive_hash]
    assert partials.entries()[0].active
    fourth.close()


def test_open_transfers_are_never_collected(tmp_path: Path) -> None:
    first, second = (archive(tmp_path, 4 * CHUNK, seed=seed)[2] for seed in (1, 2))
    partials = store(tmp_path, max_total_bytes=6 * CHUNK)
    held = partials.open(first)
    with pytest.raises(ServiceDistributionError) as info:
        partials.open(second)
    assert code_of(info) == "no_partial_space"
    held.close()
    partials.open(second).close()
    assert [info.archive_hash for info in partials.entries()] == [second.archive_hash]


def test_interrupted_creation_leaves_nothing_behind(tmp_path: Path) -> None:
    partials = store(tmp_path)
    leftover = partials.root / ".tmp-abc"
    leftover.mkdir()
    (leftover / "data").write_bytes(b"x")
    (partials.root / "unrelated").mkdir()
    store(tmp_path)
    assert not leftover.exists()
    assert partials.entries() == []


def test_storage_failures_are_typed(tmp_path: Path) -> None:
    _, _, manifest = archive(tmp_path)
    partials = store(tmp_path)
    partials.root.rmdir()
    partials.root.write_bytes(b"not a directory")
    with pytest.raises(ServiceDistributionError) as info:
        partials.open(manifest)
    assert code_of(info) == "storage_failed" and isinstance(info.value.__cause__, OSError)
