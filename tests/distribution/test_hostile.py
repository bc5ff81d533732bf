"""Hostile peers on the transfer protocol: each costs only its own stream, and the node serves on.

The attacker is a bare libp2p host (Noise + Yamux, like a node) speaking raw transfer frames.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import multiaddr
import pytest
import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2p_orchestrator.errors import ProtocolError
from p2p_orchestrator.node import Node
from p2p_orchestrator.node.distribution._transfer_stream import TransferStream
from p2p_orchestrator.node.host._stream import NetStream, RawStream, StreamBroken
from p2p_orchestrator.transfer import (
    TRANSFER_PROTOCOL_ID,
    Abort,
    Bitfield,
    Chunk,
    Have,
    Offer,
    Result,
    TransferMessage,
    Want,
    build_manifest,
)
from tests.distribution.support import CHUNK, blob_archive, transfer_swarm, transfers
from tests.node.support import raw_peer

TRANSFER = TProtocol(TRANSFER_PROTOCOL_ID)
SERVICE = "example_service"


async def open_transfer(host: IHost, node: Node) -> TransferStream:
    info = info_from_p2p_addr(multiaddr.Multiaddr(node.listen_addrs[0]))
    await host.connect(info)
    raw: Any = await host.new_stream(info.peer_id, [TRANSFER])
    return TransferStream(NetStream(cast(RawStream, raw)), write_timeout=5.0, max_archive_bytes=1 << 30)


async def messages_until_end(
    stream: TransferStream, limit: float = 10.0
) -> tuple[list[TransferMessage], str]:
    """Every message the node sends until the stream ends, and how (``eof``/``broken``/``timeout``)."""
    found: list[TransferMessage] = []
    with trio.move_on_after(limit):
        while True:
            try:
                message = await stream.receive()
            except Exception:
                return found, "broken"
            if message is None:
                return found, "eof"
            found.append(message)
    return found, "timeout"


async def push_works(origin: Node, target: Node, version: str, tmp_path: Path) -> None:
    """A good distribution to ``target`` still succeeds."""
    await origin.orchestrator.install_service(blob_archive(tmp_path / "good", version, size=200_000))
    result = await origin.orchestrator.distribute_service(SERVICE, [target.peer_id])
    assert result["successful_distributions"] == 1, result


async def test_garbage_and_wrong_first_messages_get_an_abort(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path) as nodes, raw_peer() as attacker, raw_peer() as stranger:
            friend, victim = nodes
            # a peer without a role is turned away unread
            stream = await open_transfer(stranger, victim)
            found, _ = await messages_until_end(stream)
            assert len(found) == 1 and isinstance(found[0], Abort)
            assert found[0].error.code == "permission_denied"
            await victim.set_role(attacker.get_id().to_base58(), "reader")
            for number, data in enumerate(
                [
                    b"\x00\x00\x00\x20" + os.urandom(32),  # not CBOR
                    (2**31).to_bytes(4, "big") + b"\xa0",  # a frame far over the limit
                    b"",  # nothing at all, then EOF
                ]
            ):
                stream = await open_transfer(attacker, victim)
                if data:
                    await stream.net.send(data)
                await stream.close()
                found, end = await messages_until_end(stream)
                assert end in ("eof", "broken")
                if data:
                    (abort,) = found
                    assert isinstance(abort, Abort)
                    assert isinstance(abort.error, ProtocolError)  # bad_cbor, cbor_*, frame_too_large...
                    assert abort.error.code == "frame_too_large" or "cbor" in abort.error.code
                await push_works(friend, victim, f"1.{number}.0", tmp_path)
            stream = await open_transfer(attacker, victim)
            await stream.send(Want((0,)))
            found, _ = await messages_until_end(stream)
            assert len(found) == 1 and isinstance(found[0], Abort)
            assert found[0].error.code == "unexpected_message"


async def test_lying_and_stalling_senders(tmp_path: Path) -> None:
    archive_path = tmp_path / "archive.tar.gz"
    archive_path.write_bytes(blob_archive(tmp_path / "src", "9.0.0", size=8 * CHUNK))
    manifest = build_manifest(archive_path, CHUNK)
    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path, node={"read_timeout": 1.0}) as nodes, raw_peer() as attacker:
            friend, victim = nodes
            await victim.set_role(attacker.get_id().to_base58(), "deployer")

            # a liar: every chunk it sends is corrupt; the fourth ends the transfer
            liar = await open_transfer(attacker, victim)
            await liar.send(Offer(manifest))
            await liar.send(Have(Bitfield.full(manifest.chunk_count).to_bytes()))
            asked: list[int] = []
            while len(asked) < 4:
                message = await liar.receive()
                assert message is not None, "the node ended the stream early"
                if isinstance(message, Want):
                    for index in message.indices:
                        asked.append(index)
                        await liar.send(Chunk(index, b"\x00" * manifest.chunk_length(index)))
            found, end = await messages_until_end(liar)
            results = [m for m in found if isinstance(m, Result)]
            assert results and results[-1].error is not None
            assert results[-1].error.code == "too_many_corrupt_chunks"

            # a staller: offers, then says nothing; reset after read_timeout, meanwhile others are served
            staller = await open_transfer(attacker, victim)
            started = trio.current_time()
            await staller.send(Offer(manifest))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(push_works, friend, victim, "1.0.0", tmp_path)
                found, end = await messages_until_end(staller)
            assert end in ("eof", "broken")
            assert 0.8 < trio.current_time() - started < 5.0
            assert isinstance(found[0], Have)  # it answered the offer, then gave up waiting
            # nothing of the liar's or the staller's was installed; the partial is kept for a resume
            assert victim.orchestrator.store.get(SERVICE).current.version == "1.0.0"
            assert [p.name for p in (victim.orchestrator.home / "partial").iterdir()] == [
                manifest.archive_hash
            ]


async def test_a_target_that_never_reads_or_never_answers_times_out(tmp_path: Path) -> None:
    """The origin's write and read deadlines end each try; other targets are served meanwhile."""
    archive = blob_archive(tmp_path / "src", size=9 << 20)
    options = {"read_timeout": 0.5, "write_timeout": 0.5, "transfer_attempts": 2}
    with trio.fail_after(60):
        async with (
            transfer_swarm(2, tmp_path, chunk=512 * 1024, node=options) as nodes,
            raw_peer() as mute,
            raw_peer() as deaf,
        ):
            origin, good = nodes
            await origin.orchestrator.install_service(archive)

            async def never_answers(raw: Any) -> None:
                await trio.sleep_forever()

            async def never_reads(raw: Any) -> None:
                stream = TransferStream(NetStream(raw), write_timeout=5.0, max_archive_bytes=1 << 30)
                offer = await stream.receive()
                assert isinstance(offer, Offer)
                await stream.receive()  # its have
                await stream.send(Have(Bitfield(offer.manifest.chunk_count).to_bytes()))
                await stream.send(Want(tuple(range(16))))  # 8 MiB: twice what Yamux lets through unread
                await trio.sleep_forever()  # and never reads again

            mute.set_stream_handler(TRANSFER, never_answers)
            deaf.set_stream_handler(TRANSFER, never_reads)
            for host in (mute, deaf):
                await origin.connect(f"{host.get_addrs()[0]}")
            targets = [mute.get_id().to_base58(), deaf.get_id().to_base58(), good.peer_id]
            started = trio.current_time()
            result = await origin.orchestrator.distribute_service(SERVICE, targets, strategy="push")
            assert trio.current_time() - started < 10
            errors = {peer: entry.get("error") for peer, entry in result["results"].items()}
            assert errors[good.peer_id] is None
            assert errors[targets[0]] == (
                f"[transfer_timeout] {targets[0]} did not answer the offer within 0.5 s (gave up after 2 tries)"
            )
            # which deadline ends it depends on how far Yamux's auto-tuned window (4-16 MiB) lets
            # the origin write ahead: the write deadline, or the read deadline after the last write
            deaf_error = errors[targets[1]]
            assert deaf_error.endswith("(gave up after 2 tries)")
            assert deaf_error.startswith(
                (
                    f"[transfer_cut] the stream to {targets[1]} ended before its result",
                    f"[transfer_timeout] {targets[1]} lacks chunks but asked for none within 0.5 s",
                )
            )
            assert transfers(origin).chunk_size == 512 * 1024


async def test_over_the_transfer_limits_a_stream_is_refused_busy(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            transfer_swarm(2, tmp_path, node={"max_transfers_per_peer": 1}) as nodes,
            raw_peer() as attacker,
        ):
            friend, victim = nodes
            await victim.set_role(attacker.get_id().to_base58(), "reader")
            first = await open_transfer(attacker, victim)  # holds the only slot, says nothing
            second = await open_transfer(attacker, victim)
            found, end = await messages_until_end(second, limit=5)
            assert end in ("eof", "broken")
            (abort,) = found
            assert isinstance(abort, Abort) and abort.error.code == "busy"
            await push_works(friend, victim, "1.0.0", tmp_path)  # another peer is not affected
            await first.reset()


async def test_the_write_deadline_resets_a_stream_nobody_reads(tmp_path: Path) -> None:
    """More than Yamux's largest window (16 MiB) to a peer that never reads: reset after write_timeout."""
    with trio.fail_after(30):
        async with transfer_swarm(1, tmp_path, node={"write_timeout": 0.5}) as nodes, raw_peer() as deaf:
            (origin,) = nodes

            async def never_reads(raw: Any) -> None:
                await trio.sleep_forever()

            deaf.set_stream_handler(TRANSFER, never_reads)
            await origin.connect(f"{deaf.get_addrs()[0]}")
            stream = await transfers(origin).open_stream(deaf.get_id().to_base58())
            frame = bytes(4 << 20)

            async def write_32_mib() -> None:
                for _ in range(8):
                    await stream.send_frame(frame)

            with pytest.raises(StreamBroken) as broken:
                await write_32_mib()
            assert "did not take a 4194304-byte frame within 0.5 s" in str(broken.value)
            assert stream.failure is not None
