"""A tiny HTTP BitTorrent tracker for the BitTorrent baseline (stdlib only; any Python 3.11).

    python3 bt_tracker.py --address 10.213.0.1 --port 6969

Answers ``GET /announce`` (BEP 3) with a bencoded dictionary and a compact peer list (BEP 23):
every other peer of the same info-hash that announced and has not said ``stopped``.  The peer's
address is the connection's source address (testbed hosts have one address each).  It prints
``listening`` when it accepts connections and, when its stdin ends, one JSON line of counters,
then exits.  The swarm lives in memory only.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

INTERVAL = 10
"""Seconds between a peer's regular re-announces (peers also find each other by connecting)."""


def bencode(value: Any) -> bytes:
    """Bencode an int, bytes, str, list or dict (keys sorted as BEP 3 requires)."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


class Swarms:
    """Peers by info-hash: peer id -> (address, port, bytes left)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.peers: dict[bytes, dict[bytes, tuple[str, int, int]]] = {}
        self.announces = 0

    def announce(
        self,
        info_hash: bytes,
        peer_id: bytes,
        *,
        address: str,
        port: int,
        left: int,
        event: str,
        numwant: int,
    ) -> dict[str, Any]:
        """Record one announce; the response dictionary for it."""
        with self.lock:
            self.announces += 1
            swarm = self.peers.setdefault(info_hash, {})
            if event == "stopped":
                swarm.pop(peer_id, None)
            else:
                swarm[peer_id] = (address, port, left)
            others = [peer for pid, peer in swarm.items() if pid != peer_id][:numwant]
            seeds = sum(1 for _, _, peer_left in swarm.values() if peer_left == 0)
            leechers = len(swarm) - seeds
        compact = b"".join(socket.inet_aton(a) + struct.pack(">H", p) for a, p, _ in others)
        return {
            "interval": INTERVAL,
            "min interval": 1,
            "complete": seeds,
            "incomplete": leechers,
            "peers": compact,
        }


def make_handler(swarms: Swarms) -> type[BaseHTTPRequestHandler]:
    """The request handler class serving ``swarms``."""

    class Announce(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/announce":
                self._reply(404, {"failure reason": "only /announce is served"})
                return
            # latin-1 turns each percent-escaped byte into one character: .encode() gives them back.
            query = {k: v[0] for k, v in parse_qs(url.query, encoding="latin-1").items()}
            try:
                info_hash = query["info_hash"].encode("latin-1")
                peer_id = query["peer_id"].encode("latin-1")
                port = int(query["port"])
                left = int(query.get("left", "0"))
                numwant = int(query.get("numwant", "50"))
            except (KeyError, ValueError) as exc:
                self._reply(400, {"failure reason": f"bad announce: {exc}"})
                return
            if len(info_hash) != 20 or not 0 < port < 65536:
                self._reply(400, {"failure reason": "bad info_hash or port"})
                return
            answer = swarms.announce(
                info_hash,
                peer_id,
                address=self.client_address[0],
                port=port,
                left=left,
                event=query.get("event", ""),
                numwant=numwant,
            )
            self._reply(200, answer)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = bencode(body)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the counters are printed at exit."""

    return Announce


def main() -> int:
    """Serve until stdin ends; print the counters."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=6969)
    args = parser.parse_args()
    swarms = Swarms()
    server = ThreadingHTTPServer((args.address, args.port), make_handler(swarms))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="tracker", daemon=True)
    thread.start()
    started = time.monotonic()
    print("listening", flush=True)
    try:
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        server.shutdown()
        server.server_close()
    with swarms.lock:
        peers = sum(len(swarm) for swarm in swarms.peers.values())
    print(
        json.dumps(
            {
                "event": "stats",
                "announces": swarms.announces,
                "peers": peers,
                "seconds": time.monotonic() - started,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
