"""The BitTorrent baseline of ``swarm_n1`` .. ``swarm_n16`` (issue 6): libtorrent on the testbed.

One run: a testbed of N + 1 hosts (:mod:`testbed`: 20 Mbit/s each way per host link, 5 ms one
way), the tiny tracker (:mod:`benchlib.bt_tracker`) and one seeder on host 0, one leecher on each
of hosts 1..N (:mod:`benchlib.bt_peer`, each its own ``/usr/bin/python3`` process with Debian's
``python3-libtorrent``).  The .torrent (v1, 256 KiB pieces) announces to that tracker.  All
leechers have their torrent added and paused before the clock starts; a sample is the time from
telling them ``go`` to the last leecher's ``torrent_finished_alert`` (every piece downloaded
and hash-checked).  Afterwards each leecher's file is compared with the original (SHA-256), and
the seeder's uploaded payload is what "origin upload" is compared with.

Registration: the benchmark's registry calls :func:`baseline` (see "Registration hook" below).
Usable alone too::

    sudo .venv/bin/python scripts/benchlib/bittorrent.py 4 --mib 16 --reps 3

Everything started (processes, namespaces) is stopped when a run ends, also on error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):  # run as a script: make ``testbed`` and ``benchlib`` importable
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import trio

import testbed
from benchlib.model import Baseline, Context, Measurement
from testbed import Testbed

__all__ = [
    "MIB",
    "PIECE_BYTES",
    "SYSTEM_PYTHON",
    "SwarmRun",
    "baseline",
    "measure",
    "run_swarm",
    "unavailable_reason",
]

SYSTEM_PYTHON = "/usr/bin/python3"
"""Debian's Python, where ``python3-libtorrent`` installs."""
MIB = 1 << 20
PIECE_BYTES = 256 * 1024
QUICK_MAX_LEECHERS = 4
_HERE = Path(__file__).resolve().parent
_PEER = str(_HERE / "bt_peer.py")
_TRACKER = str(_HERE / "bt_tracker.py")
_TRACKER_PORT = 6969
_PEER_PORT = 6881
_STARTUP = 60.0
"""Seconds allowed for the tracker and every peer to say ``ready``."""


class BaselineError(RuntimeError):
    """A peer failed, or the swarm did not finish in time."""


class BaselineStopped(BaselineError):
    """The caller asked the run to stop (its ``stop`` event was set)."""


def unavailable_reason() -> str | None:
    """Why the baseline cannot run here (the testbed, or libtorrent for /usr/bin/python3), or ``None``."""
    reason = testbed.unavailable_reason()
    if reason is not None:
        return f"the testbed cannot run here: {reason}"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no {SYSTEM_PYTHON} (Debian's Python, for python3-libtorrent)"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import libtorrent"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        return "no libtorrent for /usr/bin/python3 (apt-get install python3-libtorrent)"
    return None


def libtorrent_version() -> str:
    """The version of libtorrent that /usr/bin/python3 imports."""
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import libtorrent; print(libtorrent.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


# --------------------------------------------------------------------------- child processes


class _Peers:
    """The JSON-line children of one run: started in testbed hosts, read together, always stopped."""

    def __init__(self, bed: Testbed, stop: threading.Event | None = None) -> None:
        self.bed = bed
        self.stop_requested = stop
        self.selector = selectors.DefaultSelector()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.buffers: dict[str, bytes] = {}

    def start(self, name: str, host: int, argv: list[str]) -> None:
        proc = self.bed.run(host, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.procs[name] = proc
        self.buffers[name] = b""
        if proc.stdout is None:
            raise BaselineError(f"{name} has no stdout pipe")
        os.set_blocking(proc.stdout.fileno(), False)
        self.selector.register(proc.stdout, selectors.EVENT_READ, name)

    def send(self, name: str, line: str) -> None:
        stdin = self.procs[name].stdin
        if stdin is None:
            raise BaselineError(f"{name} has no stdin pipe")
        stdin.write(line.encode() + b"\n")
        stdin.flush()

    def wait_for(self, names: list[str], event: str, deadline: float) -> dict[str, dict[str, Any]]:
        """The first ``event`` line of each of ``names``; raises on an ``error`` line, an exit or the deadline."""
        found: dict[str, dict[str, Any]] = {}
        while len(found) < len(names):
            for name in names:
                if name in found:
                    continue
                message = self._next_line(name)
                while message is not None:
                    if message.get("event") == "error":
                        raise BaselineError(f"{name}: {message.get('message')}")
                    if message.get("event") == event:
                        found[name] = message
                        break
                    message = self._next_line(name)
            if len(found) == len(names):
                break
            if self.stop_requested is not None and self.stop_requested.is_set():
                raise BaselineStopped(f"stopped while waiting for {event!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                waiting = sorted(set(names) - set(found))
                raise BaselineError(f"no {event!r} from {waiting} in time")
            for key, _ in self.selector.select(min(left, 1.0)):
                self._fill(key.data, key.fileobj)  # type: ignore[arg-type]
            for name in names:
                if (
                    name not in found
                    and self.procs[name].poll() is not None
                    and b"\n" not in self.buffers[name]
                ):
                    raise BaselineError(f"{name} exited ({self.procs[name].returncode}) before {event!r}")
        return found

    def _fill(self, name: str, stream: IO[bytes]) -> None:
        data = stream.read()
        if data:
            self.buffers[name] += data
        elif data == b"":  # end of file
            self.selector.unregister(stream)

    def _next_line(self, name: str) -> dict[str, Any] | None:
        buffer = self.buffers[name]
        if b"\n" not in buffer:
            return None
        line, _, self.buffers[name] = buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line) if line.startswith(b"{") else {"event": line.decode()}
        return message

    def stop(self, names: list[str], deadline: float) -> dict[str, dict[str, Any]]:
        """Ask ``names`` to stop (end of stdin); their ``stats`` lines."""
        for name in names:
            stdin = self.procs[name].stdin
            if stdin is not None and not stdin.closed:
                stdin.close()
        return self.wait_for(names, "stats", deadline)

    def close(self) -> None:
        """Stop every child still running (stdin closed, then SIGTERM, then SIGKILL) and wait for it."""
        for proc in self.procs.values():
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.selector.close()


# --------------------------------------------------------------------------- one run


@dataclass
class SwarmRun:
    """One distribution of the file from the seeder to every leecher."""

    seconds: float
    """From ``go`` to the last leecher's finish."""
    leecher_seconds: list[float]
    seeder_payload_upload: int
    seeder_upload: int
    leecher_payload_download: int
    archive_bytes: int
    verified: bool
    tracker: dict[str, Any] = field(default_factory=dict)


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, MIB))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def make_torrent(
    source: Path, torrent: Path, tracker_url: str, piece_bytes: int = PIECE_BYTES
) -> dict[str, Any]:
    """Make the .torrent of ``source`` with libtorrent (/usr/bin/python3, no network)."""
    proc = subprocess.run(
        [SYSTEM_PYTHON, _PEER, "make", str(source), str(torrent), "--tracker", tracker_url,
         "--piece-size", str(piece_bytes)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BaselineError(f"making the torrent failed: {proc.stderr.strip()}")
    made: dict[str, Any] = json.loads(proc.stdout)
    return made


def run_swarm(
    bed: Testbed,
    leechers: int,
    *,
    source: Path,
    torrent: Path,
    sha256: str,
    workdir: Path,
    timeout: float,
    super_seeding: bool = False,
    stop: threading.Event | None = None,
) -> SwarmRun:
    """One run on ``bed`` (hosts 0..``leechers``): tracker + seeder on host 0, a leecher on each other."""
    if len(bed.hosts) < leechers + 1:
        raise ValueError(f"{leechers} leechers need {leechers + 1} testbed hosts, not {len(bed.hosts)}")
    size = source.stat().st_size
    subnet = bed.subnet
    peers = _Peers(bed, stop)
    leecher_names = [f"leecher{i}" for i in range(1, leechers + 1)]
    try:
        startup = time.monotonic() + _STARTUP
        peers.start("tracker", 0, [SYSTEM_PYTHON, _TRACKER, "--address", bed.address(0),
                                   "--port", str(_TRACKER_PORT)])  # fmt: skip
        peers.wait_for(["tracker"], "listening", startup)
        common = ["--torrent", str(torrent), "--port", str(_PEER_PORT), "--subnet", subnet,
                  "--timeout", str(timeout + _STARTUP)]  # fmt: skip
        peers.start("seeder", 0, [SYSTEM_PYTHON, _PEER, "seed", "--save", str(source.parent),
                                  "--address", bed.address(0), *common,
                                  *(["--super-seeding"] if super_seeding else [])])  # fmt: skip
        for i, name in enumerate(leecher_names, start=1):
            save = workdir / name
            save.mkdir(parents=True)
            peers.start(name, i, [SYSTEM_PYTHON, _PEER, "leech", "--save", str(save),
                                  "--address", bed.address(i), *common])  # fmt: skip
        peers.wait_for(["seeder", *leecher_names], "ready", startup)
        started = time.monotonic()
        for name in leecher_names:
            peers.send(name, "go")
        finished = peers.wait_for(leecher_names, "finished", started + timeout)
        stats = peers.stop(["seeder", *leecher_names], time.monotonic() + 30)
        tracker = peers.stop(["tracker"], time.monotonic() + 10)["tracker"]
    finally:
        peers.close()
    times = [finished[name]["t"] - started for name in leecher_names]
    seeder = stats["seeder"]
    return SwarmRun(
        seconds=max(times),
        leecher_seconds=[round(t, 3) for t in times],
        seeder_payload_upload=seeder["payload_upload"],
        seeder_upload=seeder["upload"],
        leecher_payload_download=sum(stats[name]["payload_download"] for name in leecher_names),
        archive_bytes=size,
        verified=all(stats[name]["sha256"] == sha256 for name in leecher_names),
        tracker=tracker,
    )


def measure(
    leechers: int,
    size: int,
    workdir: Path,
    *,
    repetitions: int = 3,
    warmups: int = 1,
    piece_bytes: int = PIECE_BYTES,
    testbed_options: dict[str, Any] | None = None,
    super_seeding: bool = False,
    stop: threading.Event | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """Warm up, then ``repetitions`` runs on one testbed: (seconds per run, extra figures).

    Setting ``stop`` (from another thread) ends the run within a second with :class:`BaselineStopped`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source_dir = workdir / "origin"
    source_dir.mkdir()
    source = source_dir / "archive.bin"
    sha256 = _random_file(source, size)
    link_mbit = (testbed_options or {}).get("rate_mbit", 20.0)
    # Ten times the time one link needs for the file, plus start-up slack.
    timeout = 60.0 + 10 * size * 8 / (link_mbit * 1e6)
    runs: list[SwarmRun] = []
    with Testbed(leechers + 1, **(testbed_options or {})) as bed:
        torrent = workdir / "archive.torrent"
        made = make_torrent(source, torrent, f"http://{bed.address(0)}:{_TRACKER_PORT}/announce", piece_bytes)
        for k in range(warmups + repetitions):
            rep_dir = workdir / f"run{k}"
            try:
                run = run_swarm(
                    bed,
                    leechers,
                    source=source,
                    torrent=torrent,
                    sha256=sha256,
                    workdir=rep_dir,
                    timeout=timeout,
                    super_seeding=super_seeding,
                    stop=stop,
                )
            finally:
                shutil.rmtree(rep_dir, ignore_errors=True)
            if not run.verified:
                raise BaselineError(f"run {k}: a leecher's file differs from the original")
            if k >= warmups:
                runs.append(run)
        delay_line = bed.delay_stats()
        shaping = bed.shaping()
    samples = [run.seconds for run in runs]
    uploads = [run.seeder_payload_upload for run in runs]
    extra: dict[str, Any] = {
        "leechers": leechers,
        "hosts": leechers + 1,
        "archive_bytes": size,
        "piece_bytes": made["piece_bytes"],
        "repetitions": repetitions,
        "warmups": warmups,
        "origin_upload_bytes": statistics.median(uploads),
        "origin_upload_over_archive": round(statistics.median(uploads) / size, 3),
        "origin_upload_with_protocol_bytes": statistics.median(run.seeder_upload for run in runs),
        "from_peers_over_archive": round(
            statistics.median(
                (run.leecher_payload_download - run.seeder_payload_upload) / size for run in runs
            ),
            3,
        ),
        "one_link_seconds": round(size * 8 / (shaping["rate_mbit"] * 1e6), 3),
        "leecher_seconds_last_run": runs[-1].leecher_seconds if runs else [],
        "all_verified": all(run.verified for run in runs),
        "testbed": shaping,
        "delay_line": delay_line,
        "libtorrent": libtorrent_version(),
        "super_seeding": super_seeding,
        "peers": (
            "1 seeder + tracker on host 0, 1 leecher per other host; TCP only, no DHT/LSD/UPnP/NAT-PMP/"
            "encryption, no rate limits, testbed peers in libtorrent's local class (always unchoked)"
        ),
    }
    return samples, extra


# --------------------------------------------------------------------------- registration hook
#
# For scripts/benchlib/registry.py: in ``_swarm(hosts)``, replace ``baseline=None`` and the
# ``no_baseline=...`` text with ``baseline=bittorrent.baseline(hosts)`` (and import
# ``bittorrent`` from ``benchlib``).  Nothing else in the benchmark changes.


def _sizes(quick: bool) -> tuple[int, int, int]:
    """(file bytes, repetitions, warm-ups) for the mode."""
    return (4 * MIB, 2, 0) if quick else (16 * MIB, 3, 1)


def baseline(hosts: int) -> Baseline:
    """The :class:`~benchlib.model.Baseline` of ``swarm_n<hosts>``: one seeder, ``hosts`` leechers."""

    async def tools(ctx: Context) -> str | None:
        if ctx.quick and hosts > QUICK_MAX_LEECHERS:
            return f"not run in --quick (N > {QUICK_MAX_LEECHERS}); the full run measures it"
        key = "bittorrent"
        if key not in ctx.cache:
            ctx.cache[key] = await trio.to_thread.run_sync(unavailable_reason)
        found = ctx.cache[key]
        if isinstance(found, Exception):
            raise found
        return found

    async def run(ctx: Context) -> Measurement:
        size, repetitions, warmups = _sizes(ctx.quick)
        workdir = ctx.workdir / f"bittorrent-n{hosts}"
        stop, done = threading.Event(), threading.Event()

        def measure_here() -> tuple[list[float], dict[str, Any]]:
            try:
                return measure(hosts, size, workdir, repetitions=repetitions, warmups=warmups, stop=stop)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
                done.set()

        # A worker thread: the run blocks on its children.  When this task is cancelled (the
        # scenario's time budget, Ctrl-C) the thread is told to stop and awaited, so that its
        # processes and testbed are gone before the cancellation goes on.
        try:
            samples, extra = await trio.to_thread.run_sync(measure_here, abandon_on_cancel=True)
        except BaseException:
            stop.set()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(done.wait, 60.0)
            raise
        return Measurement(samples, extra)

    return Baseline(
        f"libtorrent {hosts} leecher(s) + 1 seeder and a local tracker on the same testbed (TCP, 256 KiB pieces)",
        run,
        tools=tools,
    )


# --------------------------------------------------------------------------- command line


def main() -> int:
    """``bittorrent.py N [--mib M] [--reps R]``: measure and print the JSON figures."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Measure the BitTorrent baseline on the testbed.")
    parser.add_argument("leechers", type=int)
    parser.add_argument("--mib", type=float, default=16.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--piece-kib", type=int, default=PIECE_BYTES // 1024)
    parser.add_argument("--super-seeding", action="store_true", help="the seeder uses BEP 16 super-seeding")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(f"bittorrent baseline unavailable: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="p2p-bt-") as work:
        samples, extra = measure(
            args.leechers,
            int(args.mib * MIB),
            Path(work),
            repetitions=args.reps,
            warmups=args.warmups,
            piece_bytes=args.piece_kib * 1024,
            super_seeding=args.super_seeding,
        )
    print(json.dumps({"seconds": samples, "median": statistics.median(samples), **extra}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
