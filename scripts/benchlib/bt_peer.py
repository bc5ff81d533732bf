"""One libtorrent peer of the BitTorrent baseline, or the tool that makes its .torrent.

Runs under Debian's ``/usr/bin/python3`` with ``python3-libtorrent`` (stdlib + libtorrent only)::

    python3 bt_peer.py make FILE TORRENT --tracker URL [--piece-size BYTES]
    python3 bt_peer.py seed  --torrent T --save DIR --address IP [--port P]
    python3 bt_peer.py leech --torrent T --save DIR --address IP [--port P] [--subnet 10.213.0]

It talks JSON lines on stdout (``{"event": ...}``) and takes commands on stdin:

* ``ready``: the session listens; a seeder has hash-checked its file and seeds.  A leecher has
  its torrent added, paused, and waits for ``go``.
* ``go`` (stdin, leechers): resume the torrent (it announces to the tracker and downloads).
* ``progress`` (about once a second while downloading) and ``finished``: every piece is
  downloaded and has passed its hash check; ``t`` is ``time.monotonic()`` at that alert
  (CLOCK_MONOTONIC, the same clock in every process of the machine).
* ``stop`` or the end of stdin: print ``stats`` (bytes up and down, and whether the file's
  SHA-256 is the expected one) and exit.  A finished leecher keeps seeding until then.
* ``error``: something failed (then exit status 1).

Session settings (see :func:`settings`): DHT, local service discovery, UPnP and NAT-PMP off;
uTP off (TCP only, as the project uses); protocol encryption neither required nor offered; no
rate limits, and IP overhead not charged against them.  Peers on the testbed subnet are put in
libtorrent's "local" peer class, as libtorrent does by default with any 10.0.0.0/8 peer: that
class is never rate-limited and always unchoked (``ignore_unchoke_slots``), i.e. LAN behaviour,
the strongest libtorrent baseline for a cluster.  Everything else is libtorrent's defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import libtorrent as lt

PROGRESS_EVERY = 1.0


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


def settings(address: str, port: int) -> dict[str, Any]:
    """The session settings of every baseline peer."""
    return {
        "listen_interfaces": f"{address}:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "in_enc_policy": int(lt.enc_policy.disabled),
        "out_enc_policy": int(lt.enc_policy.disabled),
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        "alert_mask": int(lt.alert_category.status | lt.alert_category.error | lt.alert_category.tracker),
        "user_agent": "p2p-orchestrator-bench/libtorrent-" + lt.__version__,
    }


def local_peer_class(session: Any, subnet: str) -> None:
    """Put peers in ``subnet``.0/24 in the local peer class (every other address: the global class)."""
    classes = lt.ip_filter()
    classes.add_rule("0.0.0.0", "255.255.255.255", 1 << session.global_peer_class_id)
    classes.add_rule(f"{subnet}.0", f"{subnet}.255", 1 << session.local_peer_class_id)
    session.set_peer_class_filter(classes)


def make(args: argparse.Namespace) -> int:
    """Write a v1 .torrent of one file, announcing to ``--tracker``."""
    source = Path(args.file).resolve()
    files = lt.file_storage()
    lt.add_files(files, str(source))
    creator = lt.create_torrent(files, args.piece_size, lt.create_torrent.v1_only)
    creator.add_tracker(args.tracker)
    creator.set_creator("p2p-orchestrator bench")
    lt.set_piece_hashes(creator, str(source.parent))
    data = lt.bencode(creator.generate())
    Path(args.torrent).write_bytes(data)
    info = lt.torrent_info(data)
    emit(
        "made",
        info_hash=str(info.info_hashes().v1),
        pieces=info.num_pieces(),
        piece_bytes=info.piece_length(),
        total_bytes=info.total_size(),
    )
    return 0


def _stdin_lines(into: queue.Queue[str | None]) -> None:
    for line in sys.stdin:
        into.put(line.strip())
    into.put(None)


def peer(args: argparse.Namespace) -> int:
    """Seed or leech one torrent until told to stop (see the module docstring)."""
    deadline = time.monotonic() + args.timeout
    session = lt.session(settings(args.address, args.port))
    local_peer_class(session, args.subnet)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.save
    flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    if args.role == "leech":
        flags |= lt.torrent_flags.paused
    elif args.super_seeding:
        flags |= lt.torrent_flags.super_seeding
    params.flags = flags
    handle = session.add_torrent(params)
    commands: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_stdin_lines, args=(commands,), daemon=True).start()

    ready = False
    started: float | None = None
    finished: float | None = None
    next_progress = 0.0
    while True:
        if time.monotonic() > deadline:
            emit("error", message=f"timed out after {args.timeout} s", progress=handle.status().progress)
            return 1
        session.wait_for_alert(100)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.torrent_error_alert | lt.file_error_alert | lt.listen_failed_alert):
                emit("error", message=alert.message())
                return 1
            if isinstance(alert, lt.tracker_error_alert):
                print(f"bt_peer {args.address}: {alert.message()}", file=sys.stderr, flush=True)
            if isinstance(alert, lt.torrent_finished_alert) and started is not None and finished is None:
                finished = time.monotonic()
                emit("finished", t=finished, seconds=finished - started)
        status = handle.status()
        if not ready and (
            (args.role == "seed" and status.state == lt.torrent_status.seeding)
            or (args.role == "leech" and status.state != lt.torrent_status.checking_files and status.paused)
        ):
            ready = True
            emit("ready", role=args.role, address=args.address, port=session.listen_port())
        if started is not None and finished is None and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + PROGRESS_EVERY
            emit("progress", t=time.monotonic(), progress=status.progress, peers=status.num_peers)
        while not commands.empty():
            command = commands.get()
            if command == "go" and args.role == "leech" and started is None:
                started = time.monotonic()
                handle.resume()
            elif command in ("stop", None):
                _stats(handle, args)
                return 0


def _stats(handle: Any, args: argparse.Namespace) -> None:
    status = handle.status()
    info = handle.torrent_file()
    path = Path(args.save) / info.files().file_path(0)
    digest = None
    if status.is_seeding and path.is_file():
        with path.open("rb") as data:
            digest = hashlib.file_digest(data, "sha256").hexdigest()
    emit(
        "stats",
        role=args.role,
        seeding=status.is_seeding,
        payload_upload=status.total_payload_upload,
        upload=status.total_upload,
        payload_download=status.total_payload_download,
        download=status.total_download,
        sha256=digest,
    )


def main() -> int:
    """Parse the command line and run the tool or the peer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    maker = sub.add_parser("make", help="make a .torrent")
    maker.add_argument("file")
    maker.add_argument("torrent")
    maker.add_argument("--tracker", required=True)
    maker.add_argument("--piece-size", type=int, default=256 * 1024)
    for role in ("seed", "leech"):
        one = sub.add_parser(role)
        one.add_argument("--torrent", required=True)
        one.add_argument("--save", required=True)
        one.add_argument("--address", required=True)
        one.add_argument("--port", type=int, default=6881)
        one.add_argument("--subnet", default="10.213.0", help="first three octets of the testbed /24")
        one.add_argument("--timeout", type=float, default=600.0)
        if role == "seed":
            one.add_argument(
                "--super-seeding", action="store_true", help="BEP 16 initial seeding (off by default)"
            )
    args = parser.parse_args()
    if args.role == "make":
        return make(args)
    return peer(args)


if __name__ == "__main__":
    sys.exit(main())
