"""``PeerBook``: the peers this node knows, kept in ``<home>/peers.json`` across restarts.

For each peer ID the book keeps the multiaddrs it was last reached at and
whether it is *pinned*: a pinned peer (a bootstrap peer, or one connected to
with ``node.connect``) is dialled again when the node starts and when its
connection drops.  So after a restart ``node.connect(peer_id)`` and
``node.proxy(peer_id)`` work with the peer ID alone.

The file is small JSON, replaced atomically (temporary file, fsync, rename)
on every change; a corrupt file is set aside (``peers.json.corrupt``) with a
warning, never fatal: peers can be rediscovered.  Sizes are bounded
(``MAX_PEERS`` peers, ``MAX_ADDRS`` addresses each; the least recently seen
go first).

This module does not import libp2p: addresses are kept as strings.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._files import write_atomically
from p2p_orchestrator._patterns import PEER_ID

__all__ = ["MAX_ADDRS", "MAX_PEERS", "PEERS_FILE_NAME", "KnownPeer", "PeerBook"]

log = logging.getLogger("p2p_orchestrator.node")

PEERS_FILE_NAME = "peers.json"
MAX_PEERS = 1000
MAX_ADDRS = 8
_FORMAT = 1


@dataclass(frozen=True)
class KnownPeer:
    """What the book knows of one peer."""

    peer_id: str
    addrs: tuple[str, ...]
    """Multiaddrs without the ``/p2p/<id>`` suffix, most recent first."""
    pinned: bool = False
    last_seen: str = ""
    """ISO 8601 time of the last successful dial."""

    def to_json(self) -> dict[str, Any]:
        return {"addrs": list(self.addrs), "pinned": self.pinned, "last_seen": self.last_seen}


class PeerBook:
    """Known peers, persisted; see the module docstring.  Methods are blocking (small file I/O)."""

    def __init__(self, home: Path) -> None:
        self._path = home / PEERS_FILE_NAME
        # Changes run in worker threads.  _lock guards the dict and is held only briefly (the
        # event loop reads under it); _write_lock keeps file writes in the order of the changes.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._peers: dict[str, KnownPeer] = self._read()

    @property
    def path(self) -> Path:
        return self._path

    def get(self, peer_id: str) -> KnownPeer | None:
        return self._peers.get(peer_id)

    def peers(self) -> list[KnownPeer]:
        """Every known peer, most recently seen first."""
        with self._lock:
            known = list(self._peers.values())
        return sorted(known, key=lambda p: p.last_seen, reverse=True)

    def pinned(self) -> list[KnownPeer]:
        return [peer for peer in self.peers() if peer.pinned]

    def record(self, peer_id: str, addrs: list[str], *, pin: bool = False) -> KnownPeer:
        """Remember that ``peer_id`` was reached at ``addrs`` (now); ``pin`` keeps it connected."""
        with self._write_lock:
            with self._lock:
                old = self._peers.get(peer_id)
                merged = list(dict.fromkeys([*addrs, *(old.addrs if old else ())]))[:MAX_ADDRS]
                pinned = pin or (old is not None and old.pinned)
                peer = KnownPeer(peer_id, tuple(merged), pinned=pinned, last_seen=utc_now_iso())
                self._peers[peer_id] = peer
                self._trim()
                text = self._serialise()
            self._write(text)
        return peer

    def _trim(self) -> None:  # with the lock held
        if len(self._peers) > MAX_PEERS:
            by_age = sorted(self._peers.values(), key=lambda p: p.last_seen, reverse=True)
            for peer in by_age[MAX_PEERS:]:
                del self._peers[peer.peer_id]

    def _read(self) -> dict[str, KnownPeer]:
        try:
            return _parse_book(json.loads(self._path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self._path.with_name(self._path.name + ".corrupt")
            log.warning(
                "%s is unreadable (%s); set aside as %s, starting with no known peers", self._path, exc, aside
            )
            try:
                os.replace(self._path, aside)
            except OSError as move_error:
                log.warning("could not set %s aside: %s", self._path, move_error)
            return {}

    def _serialise(self) -> bytes:  # with _lock held
        data = {"format": _FORMAT, "peers": {p.peer_id: p.to_json() for p in self._peers.values()}}
        return json.dumps(data, indent=1, sort_keys=True).encode()

    def _write(self, text: bytes) -> None:  # with _write_lock held
        write_atomically(self._path, text)


def _parse_book(data: Any) -> dict[str, KnownPeer]:
    """The peers of a decoded ``peers.json``; ``ValueError`` (or a lookup error) if malformed."""
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError("not a peer book of format 1")
    peers = {}
    for peer_id, entry in data["peers"].items():
        addrs = entry["addrs"]
        if not PEER_ID.fullmatch(peer_id) or not all(isinstance(a, str) for a in addrs):
            raise ValueError(f"bad entry for {peer_id!r}")
        peers[peer_id] = KnownPeer(
            peer_id,
            tuple(addrs[:MAX_ADDRS]),
            pinned=entry["pinned"] is True,
            last_seen=str(entry["last_seen"]),
        )
    return peers
