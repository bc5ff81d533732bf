"""Cut transfers resume from the verified chunks: at every point, after a restart, at random."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2p_orchestrator.transfer import (
    Chunk,
    ReceiverState,
    SenderState,
    TransferManifest,
    TransferReceiver,
    TransferSender,
    encode_message,
)
from tests.transfer.support import CHUNK, Link, archive, reader, store


class Resumable:
    """An archive and a node home; each session is a fresh sender and receiver over the home."""

    def __init__(self, tmp_path: Path, size: int = 5 * CHUNK + 321) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.tmp_path = tmp_path
        self.path, self.data, self.manifest = archive(tmp_path, size)
        self.partials = store(tmp_path)

    def session(self, cut_at: int | None = None, *, restart: bool = False) -> tuple[Link, list[int]]:
        """One connection; returns the link and the chunks missing when it started."""
        if restart:  # a restarted node: nothing in memory survives, only the home directory
            self.partials = store(self.tmp_path)
        partial = self.partials.open(self.manifest)
        missing = partial.missing()
        receiver = TransferReceiver(partial)
        sender = TransferSender(self.manifest, reader(self.path, self.manifest))
        link = Link(sender, receiver, cut_at=cut_at).run()
        partial.close()  # the receiver object is dropped with the connection
        return link, missing

    def lengths(self, indices: list[int]) -> int:
        return sum(self.manifest.chunk_length(i) for i in indices)


def boundaries(manifest: TransferManifest) -> list[int]:
    """Byte offsets (sender to receiver) at which each frame of a full, clean transfer ends."""
    ends, total = [], 0
    frames = [len(encode_message(m)) for m in TransferSender(manifest, lambda i: b"").start()]
    frames += [
        len(encode_message(Chunk(i, b"x" * manifest.chunk_length(i)))) for i in range(manifest.chunk_count)
    ]
    for size in frames:
        total += size
        ends.append(total)
    return ends


def finish_and_check(world: Resumable, first: Link, first_missing: list[int], *, restart: bool) -> None:
    second, missing = world.session(restart=restart)
    # the first session sent only chunks that were missing, in order
    assert first.chunks == first_missing[: len(first.chunks)]
    # everything delivered whole before the cut was kept: the second sends exactly the rest
    assert second.chunks == missing
    assert (
        second.chunk_bytes
        == world.lengths(missing)
        == len(world.data) - world.lengths([i for i in range(world.manifest.chunk_count) if i not in missing])
    )
    assert set(missing) <= set(first_missing)
    assert second.receiver.state is ReceiverState.CLOSED
    assert second.sender.state is SenderState.CLOSED and second.sender.outcome is not None
    assert second.sender.outcome.ok
    assert world.partials.archive_path(world.manifest.archive_hash) is not None
    assert world.partials.archive_path(world.manifest.archive_hash).read_bytes() == world.data  # type: ignore[union-attr]


@pytest.mark.parametrize("restart", [False, True], ids=["reconnect", "restart"])
def test_cut_at_every_point_resumes_with_only_the_missing_chunks(tmp_path: Path, restart: bool) -> None:
    manifest = Resumable(tmp_path / "probe").manifest
    cuts = sorted({0, 1} | {end + delta for end in boundaries(manifest) for delta in (-1, 0, 1, 17)})
    for number, cut in enumerate(cuts):
        world = Resumable(tmp_path / f"cut-{number}")
        first, first_missing = world.session(cut)
        if cut < boundaries(manifest)[-1]:
            assert first.cut, cut
        finish_and_check(world, first, first_missing, restart=restart)


def test_a_cut_after_the_last_chunk_leaves_a_finished_archive(tmp_path: Path) -> None:
    world = Resumable(tmp_path)
    first, _ = world.session(boundaries(world.manifest)[-1])
    assert first.chunk_bytes == len(world.data)
    second, missing = world.session(restart=True)
    assert missing == [] and second.chunk_bytes == 0 and second.sender.outcome is not None


def test_a_cut_at_half_resends_only_the_other_half(tmp_path: Path) -> None:
    world = Resumable(tmp_path, 16 * CHUNK)
    half = boundaries(world.manifest)[1 + 8]  # offer, have, then 8 of 16 chunks
    first, _ = world.session(half)
    assert first.chunks[:8] == list(range(8))  # the ninth was cut short, if it started
    second, missing = world.session(restart=True)
    assert missing == list(range(8, 16))
    assert second.chunk_bytes == 8 * CHUNK == len(world.data) // 2


def test_resume_after_a_crash_that_lost_the_ledger_tail(tmp_path: Path) -> None:
    world = Resumable(tmp_path)
    world.session(boundaries(world.manifest)[1 + 3])  # chunks 0, 1, 2 delivered
    ledger = world.partials.root / world.manifest.archive_hash / "ledger"
    ledger.write_bytes(ledger.read_bytes()[:-3])  # a crash tore the last record (chunk 2)
    second, missing = world.session(restart=True)
    assert missing == list(range(2, world.manifest.chunk_count))
    assert second.chunks == missing
    assert world.partials.archive_path(world.manifest.archive_hash) is not None


FUZZ = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    cuts=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=4),
    restarts=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_random_cuts_resume_to_the_same_archive(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[float], restarts: list[bool]
) -> None:
    world = Resumable(tmp_path_factory.mktemp("fuzz"), 7 * CHUNK + 5)
    total = boundaries(world.manifest)[-1]
    sent_whole: set[int] = set()
    for fraction, restart in zip(cuts, restarts, strict=False):
        link, missing = world.session(int(fraction * total), restart=restart)
        assert link.chunks == missing[: len(link.chunks)]  # never a chunk the receiver has
        assert not sent_whole & set(link.chunks)
        fresh = world.partials.open(world.manifest)
        sent_whole |= set(range(world.manifest.chunk_count)) - set(fresh.missing())
        fresh.close()
    last, missing = world.session(restart=restarts[-1])
    assert last.chunks == missing and last.chunk_bytes == world.lengths(missing)
    assert not sent_whole & set(missing)
    assert world.partials.archive_path(world.manifest.archive_hash).read_bytes() == world.data  # type: ignore[union-attr]
