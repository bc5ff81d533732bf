"""The swarm schedule under a bandwidth model (``swarm_sim``): origin upload, time, lies, departures.

Links: 20 Mbit/s each way per node, 5 ms one way.  The archive is 4 MiB in 64 KiB chunks, so
one link needs ~1.7 simulated seconds for it; the simulation itself takes well under a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2p_orchestrator.transfer import TransferManifest, build_manifest
from tests.transfer.swarm_sim import ORIGIN, SwarmSimulation, simulate

SIZE = 4 << 20
CHUNK = 64 << 10


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TransferManifest]:
    path = tmp_path_factory.mktemp("archive") / "archive.bin"
    path.write_bytes(os.urandom(SIZE))
    return path, build_manifest(path, CHUNK)


def from_peers(bytes_from: dict[str, int]) -> int:
    return sum(count for source, count in bytes_from.items() if source != ORIGIN)


def test_eight_targets_take_about_the_time_of_one_and_the_origin_sends_the_archive_once(
    tmp_path: Path, shared: tuple[Path, TransferManifest]
) -> None:
    path, manifest = shared
    one = simulate(tmp_path / "one", path, manifest, 1)
    eight = simulate(tmp_path / "eight", path, manifest, 8)
    assert all(t is not None for t in eight.done_at.values())
    assert eight.origin_upload == SIZE  # every chunk left the origin exactly once
    assert eight.seconds <= 1.3 * one.seconds
    for received in eight.bytes_from.values():
        assert sum(received.values()) == SIZE
        assert from_peers(received) >= 6 * SIZE // 8  # 7/8 of it from the other targets


def test_without_the_plan_the_origin_pushes_to_everyone(
    tmp_path: Path, shared: tuple[Path, TransferManifest]
) -> None:
    """Rarest first alone does not spare the origin: it holds everything and is asked at once."""
    path, manifest = shared
    result = simulate(tmp_path, path, manifest, 4, plan=False)
    assert result.origin_upload >= 3 * SIZE


def test_a_lying_target_is_dropped_by_every_peer_and_the_others_complete(
    tmp_path: Path, shared: tuple[Path, TransferManifest]
) -> None:
    path, manifest = shared
    sim = SwarmSimulation(tmp_path, path, manifest, 6)
    sim.lie("t2")
    result = sim.run()
    assert all(result.done_at[name] is not None for name in sim.names)  # t2 receives honestly
    droppers = {target for target, source, code in result.dropped if source == "t2"}
    assert droppers == set(sim.names) - {"t2"}
    assert {code for _, _, code in result.dropped} == {"too_many_corrupt_chunks"}
    assert result.origin_upload <= 1.5 * SIZE  # t2's share once more (plus a few re-asked chunks)
    for name, received in result.bytes_from.items():
        assert received.get("t2", 0) == 0 or name == "t2"


def test_a_departing_target_stalls_nobody_and_resumes_when_it_comes_back(
    tmp_path: Path, shared: tuple[Path, TransferManifest]
) -> None:
    path, manifest = shared
    sim = SwarmSimulation(tmp_path, path, manifest, 6)
    kept: dict[str, int] = {}

    def leave() -> None:
        kept["chunks"] = sim.targets["t3"].partial.have().count
        sim.depart("t3")

    result = sim.run(on={0.6: leave, 3.0: lambda: sim.join("t3")})
    assert all(t is not None for t in result.done_at.values())
    others = [result.done_at[n] for n in sim.names if n != "t3"]
    assert max(t for t in others if t is not None) < 3.0  # nobody waited for t3
    assert 0 < kept["chunks"] < manifest.chunk_count
    again = sum(result.bytes_from["t3"].values())
    assert again == SIZE - kept["chunks"] * CHUNK  # only the missing part after coming back
    assert from_peers(result.bytes_from["t3"]) > 0
    assert result.origin_upload <= 1.5 * SIZE


def test_an_owner_that_never_reaches_the_origin_is_worked_around_by_unstick(
    tmp_path: Path, shared: tuple[Path, TransferManifest]
) -> None:
    path, manifest = shared
    sim = SwarmSimulation(tmp_path, path, manifest, 4, unreachable_from_origin=frozenset({"t1"}))
    result = sim.run()
    assert all(t is not None for t in result.done_at.values())
    assert sim.unsticks >= 1
    assert from_peers(result.bytes_from["t1"]) == SIZE  # t1 got all of it from its peers
    assert result.origin_upload <= 2 * SIZE
