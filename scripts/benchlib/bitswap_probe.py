"""Issue 6, "measure before you build": py-libp2p 0.8.1's Bitswap as the swarm engine.

The same job as ``swarm_n*``: an origin publishes a random archive as a UnixFS Merkle DAG
(``MerkleDag.add_bytes``), N targets fetch it by its root CID with ``MerkleDag.fetch_file``
(one Bitswap session each, no ``peer_id``: WANT-HAVE is broadcast to every connected peer, so
targets that already hold blocks can serve them to the others).  Every host is connected to
every other one.  Reported per run: seconds from the start of the fetches to the last target
done, whether every target got the exact bytes, the blocks each target received from the
origin and from other targets (Bitswap's own per-peer delivery counters), the blocks the
origin sent, and peak RSS / Python allocations.

In-process (all hosts in one trio process on 127.0.0.1; no bandwidth cap, so this shows the
engine's own cost and behaviour, not a link-limited time)::

    .venv/bin/python scripts/benchlib/bitswap_probe.py 1 4 --mib 16

On the testbed (one process per host, 20 Mbit/s links), as root::

    .venv/bin/python scripts/benchlib/bitswap_probe.py 1 4 --mib 16 --testbed

Not part of the registry: a one-off comparison recorded in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import trio

MIB = 1 << 20


async def _peer(address: str) -> tuple[Any, Any, Any]:
    """A host + Bitswap client + DAG; returns (host, client, dag) (the host is not running yet)."""
    import multiaddr
    from libp2p.bitswap import BitswapClient, MemoryBlockStore
    from libp2p.bitswap.dag import MerkleDag

    from benchlib import p2p_host

    host = p2p_host.make_host()
    _ = multiaddr
    client = BitswapClient(host, MemoryBlockStore())
    return host, client, MerkleDag(client)


def _delivered(client: Any) -> dict[str, int]:
    """Blocks this client received, per sending peer (Bitswap's peer manager counters)."""
    return {str(peer): stats.blocks_delivered for peer, stats in client.peer_manager.peers.items()}


async def run_in_process(targets: int, size: int, chunk: int, block_timeout: float) -> dict[str, Any]:
    """One distribution in one process: origin + ``targets`` fetchers, all connected."""
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    peers = [await _peer("127.0.0.1") for _ in range(targets + 1)]
    listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    tracemalloc.start()
    result: dict[str, Any] = {"targets": targets, "archive_bytes": size, "chunk_bytes": chunk}
    async with trio.open_nursery() as nursery:
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            for host, client, _dag in peers:
                await stack.enter_async_context(host.run(listen_addrs=[listen]))
                client.set_nursery(nursery)
                await client.start()
            addrs = [f"{host.get_addrs()[0]}" for host, _, _ in peers]
            for i, (host, _, _) in enumerate(peers):
                for j in range(i + 1, len(peers)):
                    await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(addrs[j])))
            origin_dag = peers[0][2]
            t0 = time.monotonic()
            root = await origin_dag.add_bytes(data, chunk_size=chunk)
            result["publish_seconds"] = round(time.monotonic() - t0, 3)
            done: dict[int, float] = {}
            ok: dict[int, bool] = {}
            errors: dict[int, str] = {}

            async def fetch(i: int) -> None:
                try:
                    got, _name = await peers[i][2].fetch_file(root, timeout=block_timeout)
                    ok[i] = hashlib.sha256(got).hexdigest() == digest
                except Exception as exc:  # recorded: the probe reports failure modes
                    errors[i] = f"{type(exc).__name__}: {exc}"
                done[i] = time.monotonic() - start

            start = time.monotonic()
            with trio.move_on_after(block_timeout * 4):
                async with trio.open_nursery() as fetches:
                    for i in range(1, targets + 1):
                        fetches.start_soon(fetch, i)
            origin_id = str(peers[0][0].get_id())
            from_origin = from_peers = 0
            for _, client, _ in peers[1:]:
                for sender, count in _delivered(client).items():
                    if sender == origin_id:
                        from_origin += count
                    else:
                        from_peers += count
            blocks = -(-size // chunk)
            result.update(
                seconds=round(max(done.values(), default=float("nan")), 3),
                per_target_seconds=[round(done.get(i, float("nan")), 3) for i in range(1, targets + 1)],
                all_verified=len(ok) == targets and all(ok.values()),
                errors=errors,
                leaf_blocks=blocks,
                blocks_from_origin=from_origin,
                blocks_from_peers=from_peers,
                origin_upload_over_archive=round(from_origin * chunk / size, 3),
                duplicate_blocks=from_origin + from_peers - blocks * targets,
                peak_python_alloc_mib=round(tracemalloc.get_traced_memory()[1] / MIB, 1),
                peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            )
            for _, client, _ in peers:
                await client.stop()
            nursery.cancel_scope.cancel()
    tracemalloc.stop()
    return result


# --------------------------------------------------------------------------- testbed mode


async def serve_peer(listen: str) -> None:
    """One testbed host: JSON commands on stdin, JSON events on stdout (see :func:`run_testbed`)."""
    import multiaddr
    from libp2p.bitswap import BitswapClient, MemoryBlockStore
    from libp2p.bitswap.dag import MerkleDag
    from libp2p.peer.peerinfo import info_from_p2p_addr

    from benchlib import p2p_host

    def say(**event: Any) -> None:
        print(json.dumps(event), flush=True)

    host = p2p_host.make_host()
    client = BitswapClient(host, MemoryBlockStore())
    dag = MerkleDag(client)
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with trio.open_nursery() as nursery, host.run(listen_addrs=[multiaddr.Multiaddr(listen)]):
        client.set_nursery(nursery)
        await client.start()
        say(event="ready", addr=str(host.get_addrs()[0]), peer=str(host.get_id()))
        buffer = b""
        while True:
            data = await stdin.receive_some(65536)
            if not data:
                break
            buffer += data
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                cmd = json.loads(line)
                if cmd["cmd"] == "connect":
                    for addr in cmd["addrs"]:
                        await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))
                    say(event="connected")
                elif cmd["cmd"] == "publish":
                    payload = os.urandom(cmd["size"])
                    root = await dag.add_bytes(payload, chunk_size=cmd["chunk"])
                    say(event="published", root=root.hex(), sha256=hashlib.sha256(payload).hexdigest())
                elif cmd["cmd"] == "fetch":
                    t0 = time.monotonic()
                    try:
                        got, _ = await dag.fetch_file(bytes.fromhex(cmd["root"]), timeout=cmd["timeout"])
                        ok, error = hashlib.sha256(got).hexdigest() == cmd["sha256"], None
                    except Exception as exc:  # reported: a failure mode is a finding
                        ok, error = False, f"{type(exc).__name__}: {exc}"
                    say(event="finished", t=time.time(), seconds=time.monotonic() - t0, ok=ok,
                        error=error, delivered=_delivered(client))  # fmt: skip
        say(event="stats", peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        await client.stop()
        nursery.cancel_scope.cancel()


def run_testbed(targets: int, size: int, chunk: int, timeout: float) -> dict[str, Any]:
    """One distribution on a testbed of ``targets + 1`` hosts (origin on host 0), one process each."""
    import testbed
    from benchlib.bittorrent import _Peers

    argv = [sys.executable, str(Path(__file__).resolve()), "peer", "--listen"]
    with testbed.Testbed(targets + 1) as bed:
        peers = _Peers(bed)
        names = [f"h{i}" for i in range(targets + 1)]
        try:
            for i, name in enumerate(names):
                peers.start(name, i, [*argv, f"/ip4/{bed.address(i)}/tcp/4001"])
            ready = peers.wait_for(names, "ready", time.monotonic() + 60)
            for i, name in enumerate(names):
                later = [ready[other]["addr"] for other in names[i + 1 :]]
                peers.send(name, json.dumps({"cmd": "connect", "addrs": later}))
                peers.wait_for([name], "connected", time.monotonic() + 60)
            peers.send("h0", json.dumps({"cmd": "publish", "size": size, "chunk": chunk}))
            published = peers.wait_for(["h0"], "published", time.monotonic() + 60)["h0"]
            started = time.time()
            fetch = {
                "cmd": "fetch",
                "root": published["root"],
                "sha256": published["sha256"],
                "timeout": timeout,
            }
            for name in names[1:]:
                peers.send(name, json.dumps(fetch))
            finished = peers.wait_for(names[1:], "finished", time.monotonic() + timeout * 4)
            stats = peers.stop(names, time.monotonic() + 30)
        finally:
            peers.close()
        shaping = bed.shaping()
    origin = ready["h0"]["peer"]
    from_origin = sum(f["delivered"].get(origin, 0) for f in finished.values())
    from_peers = sum(sum(c for p, c in f["delivered"].items() if p != origin) for f in finished.values())
    blocks = -(-size // chunk)
    return {
        "mode": "testbed",
        "targets": targets,
        "archive_bytes": size,
        "chunk_bytes": chunk,
        "seconds": round(max(f["t"] for f in finished.values()) - started, 3),
        "per_target_seconds": [round(finished[n]["seconds"], 3) for n in names[1:]],
        "all_verified": all(f["ok"] for f in finished.values()),
        "errors": {n: f["error"] for n, f in finished.items() if f["error"]},
        "leaf_blocks": blocks,
        "blocks_from_origin": from_origin,
        "blocks_from_peers": from_peers,
        "origin_upload_over_archive": round(from_origin * chunk / size, 3),
        "duplicate_blocks": from_origin + from_peers - blocks * targets,
        "peak_rss_mib": {n: s["peak_rss_mib"] for n, s in stats.items()},
        "testbed": shaping,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if sys.argv[1:2] == ["peer"]:
        trio.run(serve_peer, sys.argv[3])
        return 0
    parser.add_argument("targets", type=int, nargs="+")
    parser.add_argument("--mib", type=float, default=16.0)
    parser.add_argument("--chunk-kib", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--testbed", action="store_true", help="one process per testbed host (root)")
    args = parser.parse_args()
    size = int(args.mib * MIB)
    for n in args.targets:
        if args.testbed:
            figures = run_testbed(n, size, args.chunk_kib * 1024, args.timeout)
        else:
            figures = trio.run(run_in_process, n, size, args.chunk_kib * 1024, args.timeout)
        print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
