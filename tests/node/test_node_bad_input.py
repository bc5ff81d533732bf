"""Hostile peers: each bad input costs only its own stream, in bounded time, and the node serves on.

The hostile side is a bare libp2p host writing raw bytes on an RPC stream; a
well-behaved node of the same swarm checks the victim still answers after
every attack (and during the slow ones).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio

from p2p_orchestrator.node import Node
from p2p_orchestrator.testing import swarm
from tests.helpers import make_archive
from tests.node.support import (
    SLOW_SERVICE,
    fast_config,
    frame,
    open_raw_stream,
    raw_peer,
    read_to_end,
    service_archive,
)

Attack = Callable[[Any], Awaitable[None]]


async def still_serving(victim: Node, friend: Node) -> None:
    listing = await friend.proxy(victim.peer_id).call_method("orchestrator/list_services", time_limit=5)
    assert listing["total_installed"] == 0


def notice_code(frames: list[dict[str, Any]]) -> str:
    """The code of the single connection-level error the node sent before ending the stream."""
    assert len(frames) == 1, frames
    (notice,) = frames
    assert notice["t"] == "err" and notice["id"] is None
    assert notice["error"]["type"] == "ProtocolError"
    code: str = notice["error"]["code"]
    return code


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


CASES = [
    (
        "random_bytes",
        b"\x00\x00\x00\x20" + os.urandom(32),
        {
            "bad_cbor",
            "cbor_not_map",
            "cbor_tag_forbidden",
            "cbor_indefinite",
            "cbor_bad_simple",
            "cbor_truncated",
            "cbor_trailing_bytes",
            "cbor_bad_key",
            "cbor_bad_utf8",
            "cbor_duplicate_key",
            "bad_message",
            "cbor_too_deep",
        },
    ),
    ("oversized_length", (2**31).to_bytes(4, "big") + b"\xa0", {"frame_too_large"}),
    ("empty_frame", b"\x00\x00\x00\x00", {"empty_frame"}),
    (
        "deep_nesting",
        frame(cbor2.dumps({"t": "req", "id": 1, "method": "a/b", "params": {"x": nested(100)}})),
        {"cbor_too_deep"},
    ),
    ("unknown_type", frame(cbor2.dumps({"t": "gimme", "id": 1})), {"bad_message"}),
    (
        "wrong_field_type",
        frame(cbor2.dumps({"t": "req", "id": "1", "method": "orchestrator/list_services", "params": {}})),
        {"bad_message"},
    ),
    (
        "extra_field",
        frame(
            cbor2.dumps(
                {
                    "t": "req",
                    "id": 1,
                    "method": "orchestrator/list_services",
                    "params": {},
                    "caller": "12D3KooWadmin",
                }
            )
        ),
        {"bad_message"},
    ),
    (
        "tagged_value",
        frame(
            cbor2.dumps(
                {
                    "t": "req",
                    "id": 1,
                    "method": "orchestrator/list_services",
                    "params": {"x": cbor2.CBORTag(1, 0)},
                }
            )
        ),
        {"cbor_tag_forbidden"},
    ),
    ("answer_to_server", frame(cbor2.dumps({"t": "res", "id": 1, "result": None})), {"unexpected_message"}),
]


async def test_malformed_frames_get_a_notice_and_a_reset(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config()) as nodes, raw_peer() as attacker:
            victim, friend = nodes
            for name, data, codes in CASES:
                stream = await open_raw_stream(attacker, victim)
                await stream.send(data)
                frames, end = await read_to_end(stream)
                assert end in ("eof", "broken"), name
                assert notice_code(frames) in codes, name
                await still_serving(victim, friend)
            assert victim.stats()["inbound_streams_open"] <= 1  # the friend's stream


async def test_truncated_frame_then_close(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config()) as nodes, raw_peer() as attacker:
            victim, friend = nodes
            stream = await open_raw_stream(attacker, victim)
            await stream.send((100).to_bytes(4, "big") + b"\xa1\x61t")
            await stream.raw.close()  # half-close: we still read the node's answer
            frames, end = await read_to_end(stream)
            assert end in ("eof", "broken")
            assert notice_code(frames) == "truncated_frame"
            await still_serving(victim, friend)


@pytest.mark.parametrize("drip", [False, True])
async def test_slowloris_is_reset_after_the_read_deadline(tmp_path: Path, drip: bool) -> None:
    """A stream that sends nothing, or drips a frame a byte at a time, is reset after read_timeout."""
    with trio.fail_after(30):
        async with (
            swarm(2, tmp_dir=tmp_path, config=fast_config(read_timeout=0.5)) as nodes,
            raw_peer() as attacker,
        ):
            victim, friend = nodes
            stream = await open_raw_stream(attacker, victim)
            async with trio.open_nursery() as nursery:
                if drip:

                    async def dripping() -> None:
                        for byte in (1000).to_bytes(4, "big") + b"\xa1" * 100:
                            try:
                                await stream.send(bytes([byte]))
                            except Exception:
                                return
                            await trio.sleep(0.05)

                    nursery.start_soon(dripping)
                start = trio.current_time()
                await still_serving(victim, friend)  # served meanwhile
                frames, end = await read_to_end(stream, limit=5)
                elapsed = trio.current_time() - start
                nursery.cancel_scope.cancel()
            assert end in ("eof", "broken") and frames == []
            assert 0.3 < elapsed < 2.0
            await still_serving(victim, friend)


async def test_a_peer_that_never_reads_answers_is_reset(tmp_path: Path) -> None:
    """Its answers fill Yamux's window; after write_timeout the node resets the stream.

    py-libp2p's Yamux grows a stream's window to about 2 MiB during protocol
    negotiation, so the attacker asks for 8 exports of a ~0.7 MB archive.
    """
    big = make_archive(tmp_path / "src", files={"assets/noise.bin": os.urandom(600_000).hex()})
    with trio.fail_after(30):
        async with (
            swarm(2, tmp_dir=tmp_path / "swarm", config=fast_config(write_timeout=0.5)) as nodes,
            raw_peer() as attacker,
        ):
            victim, friend = nodes
            await victim.rpc.call("orchestrator/install_service", {"archive_data": big})
            await victim.set_role(attacker.get_id().to_base58(), "reader")
            stream = await open_raw_stream(attacker, victim)
            request = {
                "t": "req",
                "method": "orchestrator/export_service",
                "params": {"service_name": "example_service"},
            }
            for rid in range(1, 9):
                await stream.send(frame(cbor2.dumps({**request, "id": rid})))
            await trio.sleep(1.5)  # not reading: this is the attack
            listing = await friend.proxy(victim.peer_id).call_method("orchestrator/list_services")
            assert listing["total_installed"] == 1
            frames, end = await read_to_end(stream)
            assert end in ("eof", "broken")
            assert len(frames) < 8  # it never got all its answers
            assert victim.stats()["inbound_streams_open"] == 1  # only the friend's


async def test_stream_flood_is_bounded(tmp_path: Path) -> None:
    """200 streams opened as fast as possible: at most max_streams_per_peer are served at once.

    The rest are answered ``busy``, or, past 64 open on the connection, reset by the muxer.
    """
    with trio.fail_after(60):
        async with (
            swarm(2, tmp_dir=tmp_path, config=fast_config(max_streams_per_peer=8, read_timeout=1.0)) as nodes,
            raw_peer() as attacker,
        ):
            victim, friend = nodes
            endings: list[tuple[list[dict[str, Any]], str]] = []

            async def one() -> None:
                try:
                    stream = await open_raw_stream(attacker, victim)
                except Exception as exc:  # the attacker's own side may refuse some: fine
                    endings.append(([], f"open failed: {type(exc).__name__}"))
                    return
                endings.append(await read_to_end(stream, limit=10))

            async with trio.open_nursery() as nursery:
                for _ in range(200):
                    nursery.start_soon(one)
                await still_serving(victim, friend)  # during the flood
            assert len(endings) == 200
            assert all(end != "timeout" for _, end in endings)
            busy = [frames for frames, _ in endings if frames and frames[0]["error"]["type"] == "Busy"]
            stats = victim.stats()
            assert stats["inbound_streams_peak"] <= 8 + 1  # the attacker's 8 and the friend's
            # beyond 64 streams open on its connection, a stream is reset before it is negotiated
            reset_at_open = [end for _, end in endings if end.startswith("open failed")]
            assert len(busy) + len(reset_at_open) >= 150 and stats["inbound_streams_refused"] >= len(busy)
            await still_serving(victim, friend)
            assert victim.stats()["inbound_streams_open"] == 1


async def test_an_idle_stream_is_closed_after_the_idle_deadline(tmp_path: Path) -> None:
    """A stream may rest between requests, but not longer than idle_timeout."""
    with trio.fail_after(30):
        config = fast_config(idle_timeout=0.6)
        async with swarm(2, tmp_dir=tmp_path, config=config) as nodes, raw_peer() as attacker:
            victim, friend = nodes
            stream = await open_raw_stream(attacker, victim)
            request = {"t": "req", "id": 1, "method": "orchestrator/list_services", "params": {}}
            await stream.send(frame(cbor2.dumps(request)))
            start = trio.current_time()
            frames, end = await read_to_end(stream)
            assert end in ("eof", "broken")
            assert [(f["t"], f["id"], f["error"]["type"]) for f in frames] == [
                (("err", 1, "PermissionDenied"))
            ]
            assert 0.4 < trio.current_time() - start < 3.0
            await still_serving(victim, friend)


async def test_requests_beyond_the_in_flight_limit_are_answered_busy(tmp_path: Path) -> None:
    archive = service_archive(tmp_path / "src", "slow_service", SLOW_SERVICE)
    with trio.fail_after(30):
        config = fast_config(max_in_flight_per_stream=4)
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=config) as nodes, raw_peer() as attacker:
            victim, friend = nodes
            await victim.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await victim.rpc.call("orchestrator/start_service", {"service_name": "slow_service"})
            stream = await open_raw_stream(attacker, victim)
            for rid in range(1, 11):
                request = {"t": "req", "id": rid, "method": "slow_service/sleep", "params": {"seconds": 0.3}}
                await stream.send(frame(cbor2.dumps(request)))
            await stream.raw.close()
            frames, _ = await read_to_end(stream)
            busy = sorted(f["id"] for f in frames if f["t"] == "err" and f["error"]["type"] == "Busy")
            assert busy == list(range(5, 11))
            # a node's own client stays under the limit: 10 concurrent calls all succeed
            remote = friend.proxy(victim.peer_id)
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(remote.call_method, "slow_service/sleep", {"seconds": 0.1})
