"""Both sides of ``auto_update_n16`` (issue 16): a signed release reaching 15 followers by itself.

One run: a testbed of 16 hosts (:mod:`testbed`: 20 Mbit/s each way per host link, 5 ms one
way, as for ``swarm_n16``), one node process per host (:mod:`benchlib.programs.swarm_node`):
the publisher on host 0, a follower on each of hosts 1..15.  Every node trusts one publisher
key (``[publishers.bench]``, made here with :meth:`PublisherKey.generate`) for the service;
followers have ``[updates] follow = [service]`` with ``check_interval`` 3600 s, so what moves
them is the publisher's announcement, not a poll.  Roles: every follower gives the publisher
``deployer`` and every other follower ``reader``; the publisher gives every follower
``reader`` (what a follower needs to fetch there); unknown peers get nothing.  ``deployer`` is
only for the swarm baseline's push: a follower's install of an update never checks it.  Every
node dials every later one first, then a small signed seed release is swarmed to all, so every
sample is an upgrade of a running service.

**Sample** (the project side): a new random archive (16 MiB payload, 4 MiB quick, so nothing is
deduplicated), signed with :func:`sign_archive`, then ``publish_release(archive, statement)``
on the publisher.  The time runs from just before that call (the publisher's
``time.monotonic()``) to the moment the last of the 15 followers sees the new version's process
reach ``running`` (its runtime's ``service_started`` event, stamped with its own
``time.monotonic()``: one clock for all processes of the machine, so the pipe back to this
script adds nothing).  It includes the publisher's own install and start of the release, the
announcement and every follower's fetch, verification, install and start.  Afterwards each
follower must say that version is current and running, or the run fails.

**Baseline**, in the same testbed with the same processes, interleaved with the samples: the
publisher installs another new signed archive of the same size, then ``distribute_service(...,
strategy="swarm")`` to the 15 followers, timed around that call (as ``swarm_n16`` does; the
targets start the service on install).  The scenario's ratio is the median update over the
median swarm distribution.

**Publisher upload** in copies of the archive: the bytes the publisher's transfer streams sent
during the sample (the node's own counter, every transfer frame: chunks and the few small
control messages, whoever fetched), over the archive's size.  Next to it, ``eth0``'s tx bytes in
host 0's namespace over the same interval (all traffic: TCP/IP, Noise and Yamux overhead, RPCs).

Also in ``extra``: ``publish_call_seconds`` (the ``publish_release`` call alone), the first
follower's time, ``announced_accepted`` (followers that accepted the announcement),
``updates_from_publisher`` (followers whose ``update_installed`` names the publisher as its
source: with a delivered release, the swarm's origin, whatever peers the chunks came from),
``delivered`` (when ``publish_release`` returns one: targets, successes and the chunk bytes the
origin sent by its own account) and, when ``swarm_n16`` ran earlier in the same bench run, its
median and the ratio to it (``swarm_n16`` has 16 targets on 17 hosts; this one 15 on 16).

Usable alone too (as root)::

    .venv/bin/python scripts/benchlib/project_update.py --reps 2
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]


import testbed
from benchlib import capabilities
from benchlib.bittorrent import MIB, BaselineError, BaselineStopped
from benchlib.model import Context
from benchlib.paired_run import PairedRun
from benchlib.procs import PYTHONPATH, program_argv
from benchlib.project_swarm import SERVICE, Distribution, _checked, _summary, _Swarm, make_archive
from testbed import Testbed

__all__ = ["FOLLOWERS", "baseline", "measure", "project", "requires", "unavailable_reason"]

FOLLOWERS = 15
_PORT = 4001
_STARTUP = 120.0
_CHECK_INTERVAL = 3600.0
_SETTLE = 10.0
"""Seconds a follower's ``updated`` line may lag its ``running`` line (it is only reported)."""
"""``Context.cache`` key of the run both sides of the scenario share (its figures as JSON)."""


@dataclass
class Update:
    """One ``publish_release``: until every follower runs the new version, and what moved."""

    seconds: float
    publish_seconds: float
    upload: int
    tx_bytes: int
    archive_bytes: int
    follower_seconds: list[float]
    from_publisher: int | None
    announced_accepted: int
    delivered: dict[str, Any] | None = field(default=None)


def requires_here() -> str | None:
    """Why the publish/follow side cannot run with this code (no ``publish_release``), or ``None``."""
    from p2p_orchestrator import Orchestrator

    if getattr(Orchestrator, "publish_release", None) is None:
        return "no following services yet (issue 16): Orchestrator has no publish_release"
    try:
        from p2p_orchestrator.config import UpdateSettings  # noqa: F401
    except ImportError:
        return "no following services yet (issue 16): no [updates] settings"
    return None


async def requires(ctx: Context) -> str | None:
    """The scenario's availability check: swarm distribution (issue 6) and following (issue 16)."""
    reason = await capabilities.swarm(ctx)
    return reason if reason is not None else requires_here()


def _tx_bytes(bed: Testbed, index: int) -> int:
    """Bytes sent by host ``index``'s ``eth0`` since the testbed was built (its kernel counter)."""
    host = bed.hosts[index]
    argv = ["ip", "-n", host.netns, "-j", "-s", "link", "show", "dev", host.interface]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    return int(json.loads(out.stdout)[0]["stats64"]["tx"]["bytes"])


def _delivered(result: Any) -> dict[str, Any] | None:
    """The summary of ``publish_release``'s ``delivered`` (when it has one): successes, origin bytes."""
    if not isinstance(result, dict) or not isinstance(result.get("results"), dict):
        return None
    entries = result["results"].values()
    ok = [e for e in entries if isinstance(e, dict) and e.get("success")]
    sent = sum(e.get("result", {}).get("transfer", {}).get("bytes_sent", 0) for e in ok)
    return {"targets": len(result["results"]), "successes": len(ok), "origin_bytes": sent}


class _Updates(_Swarm):
    """The 16 node processes: the publisher (``node0``) and the followers."""

    def __init__(self, bed: Testbed, workdir: Path, stop: threading.Event | None) -> None:
        super().__init__(bed, workdir, stop)
        from p2p_orchestrator.release import PublisherKey

        self.key = PublisherKey.generate()
        self.followers = self.names[1:]

    def start(self) -> None:
        from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of

        homes = {name: self.workdir / name for name in self.names}
        for name, home in homes.items():
            self.ids[name] = peer_id_of(load_or_create_identity(home))
        publisher = self.ids[self.names[0]]
        trusted = [{"label": "bench", "public_key": self.key.public_text, "services": [SERVICE]}]
        for i, name in enumerate(self.names):
            if i == 0:
                roles = {self.ids[o]: "reader" for o in self.followers}
                settings: dict[str, Any] = {}
            else:
                roles = {publisher: "deployer"}
                roles.update({self.ids[o]: "reader" for o in self.followers if o != name})
                settings = {"follow": [SERVICE], "check_interval": _CHECK_INTERVAL, "watch": True}
            settings.update(listen=f"/ip4/{self.bed.address(i)}/tcp/{_PORT}", roles=roles, publishers=trusted)
            path = homes[name] / "bench-settings.json"
            path.write_text(json.dumps(settings), encoding="utf-8")
            argv = program_argv("swarm_node", str(homes[name]), str(path))
            self.peers.start(name, i, ["env", f"PYTHONPATH={PYTHONPATH}", *argv])
        ready = self.peers.wait_for(self.names, "ready", time.monotonic() + _STARTUP)
        for i, name in enumerate(self.names[:-1]):
            later = [ready[other]["addr"] for other in self.names[i + 1 :]]
            self.command(name, {"cmd": "connect", "addrs": later}, "connected", 60)

    def signed_archive(self, size: int, version: str) -> tuple[Path, Path]:
        """A new archive of ``size`` random payload bytes and its release statement file."""
        from p2p_orchestrator.release import RELEASE_SUFFIX, sign_archive

        path, _ = make_archive(self.workdir, size, version)
        statement = sign_archive(path, self.key, now=int(time.time()), expires_in=None)
        release = path.with_name(path.name + RELEASE_SUFFIX)
        release.write_bytes(statement.to_bytes())
        return path, release

    def sent(self) -> int:
        return int(self.command(self.names[0], {"cmd": "counters"}, "counters", 60)["sent"])

    def _gather(
        self, names: list[str], deadline: float, finished: Callable[[dict[str, list[dict[str, Any]]]], bool]
    ) -> dict[str, list[dict[str, Any]]]:
        """Every line of ``names`` until ``finished(lines)`` or ``deadline`` (then what came); raises on ``error``."""
        peers = self.peers
        lines: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        while True:
            for name in names:
                while (message := peers._next_line(name)) is not None:
                    if message.get("event") == "error":
                        raise BaselineError(f"{name}: {message.get('message')}")
                    lines[name].append(message)
            if finished(lines):
                return lines
            if peers.stop_requested is not None and peers.stop_requested.is_set():
                raise BaselineStopped("stopped while waiting for the followers")
            left = deadline - time.monotonic()
            if left <= 0:
                return lines
            for key, _ in peers.selector.select(min(left, 1.0)):
                peers._fill(key.data, key.fileobj)  # type: ignore[arg-type]
            for name in names:
                proc = peers.procs[name]
                if proc.poll() is not None and b"\n" not in peers.buffers[name]:
                    raise BaselineError(f"{name} exited ({proc.returncode}) during an update")

    def update(self, size: int, version: str, timeout: float) -> Update:
        """One sample: publish ``version`` and wait until every follower runs it."""
        path, release = self.signed_archive(size, version)
        archive_bytes = path.stat().st_size
        sent, tx = self.sent(), _tx_bytes(self.bed, 0)
        try:
            self.peers.send(
                self.names[0], json.dumps({"cmd": "publish", "path": str(path), "release": str(release)})
            )

            def event(line: dict[str, Any], kind: str) -> bool:
                return line.get("event") == kind and line.get("version", version) == version

            def first(lines: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
                return next((line for line in lines if event(line, kind)), None)

            def all_running(lines: dict[str, list[dict[str, Any]]]) -> bool:
                return first(lines[self.names[0]], "published") is not None and all(
                    first(lines[name], "running") is not None for name in self.followers
                )

            deadline = time.monotonic() + timeout
            lines = self._gather(self.names, deadline, all_running)
            if not all_running(lines):
                late = [name for name in self.followers if first(lines[name], "running") is None]
                raise BaselineError(f"{version} not running on {late} within {timeout:.0f} s of its publish")
            upload, tx_bytes = self.sent() - sent, _tx_bytes(self.bed, 0) - tx
            more = self._gather(
                self.followers,
                time.monotonic() + _SETTLE,
                lambda new: all(first(lines[n] + new[n], "updated") is not None for n in self.followers),
            )
        finally:
            path.unlink()
            release.unlink()
        published = first(lines[self.names[0]], "published")
        assert published is not None
        started = float(published["started_at"])
        follower_seconds = [float(first(lines[n], "running")["at"]) - started for n in self.followers]  # type: ignore[index]
        updated = [first(lines[n] + more[n], "updated") for n in self.followers]
        publisher = self.ids[self.names[0]]
        from_publisher = (
            sum(u["from_peer"] == publisher for u in updated if u is not None)
            if all(u is not None for u in updated)
            else None
        )
        self._check_current(version)
        result = published["result"]
        announced = result.get("announced", {})
        return Update(
            seconds=max(follower_seconds),
            publish_seconds=float(published["seconds"]),
            upload=upload,
            tx_bytes=tx_bytes,
            archive_bytes=archive_bytes,
            follower_seconds=follower_seconds,
            from_publisher=from_publisher,
            announced_accepted=sum(bool(a.get("accepted")) for a in announced.values()),
            delivered=_delivered(result.get("delivered")),
        )

    def _check_current(self, version: str) -> None:
        wrong = {}
        for name in self.followers:
            answer = self.command(name, {"cmd": "version", "service": SERVICE}, "version", 60)
            if answer["version"] != version or not answer["running"]:
                wrong[name] = (answer["version"], answer["running"])
        if wrong:
            raise BaselineError(f"after publishing {version}, followers not running it: {wrong}")

    def swarm(self, size: int, version: str, timeout: float) -> tuple[Distribution, int, int]:
        """One baseline sample: a signed archive, installed on the publisher, swarmed to the followers."""
        path, release = self.signed_archive(size, version)
        archive_bytes = path.stat().st_size
        try:
            self.command(self.names[0], {"cmd": "install", "path": str(path), "release": str(release)},
                         "installed", 120)  # fmt: skip
        finally:
            path.unlink()
            release.unlink()
        sent, tx = self.sent(), _tx_bytes(self.bed, 0)
        command = {
            "cmd": "distribute",
            "service": SERVICE,
            "targets": [self.ids[name] for name in self.followers],
            "strategy": "swarm",
        }
        answer = self.command(self.names[0], command, "distributed", timeout)
        run = _checked(_summary("swarm", answer["seconds"], answer["result"], archive_bytes))
        return run, self.sent() - sent, _tx_bytes(self.bed, 0) - tx


def measure(
    size: int,
    workdir: Path,
    *,
    followers: int = FOLLOWERS,
    repetitions: int = 3,
    warmups: int = 1,
    publish: bool = True,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Interleaved updates (when ``publish``) and swarm distributions: ``{"samples", "extra",
    "baseline", "baseline_extra"}`` (seconds; the first ``warmups`` of each are dropped)."""
    workdir.mkdir(parents=True, exist_ok=True)
    one_link = size * 8 / 20e6
    timeout = 120.0 + 4 * one_link * followers
    updates: list[Update] = []
    swarms: list[tuple[Distribution, int, int]] = []
    version = iter(range(1, 10_000))
    with Testbed(followers + 1) as bed:
        nodes = _Updates(bed, workdir, stop)
        try:
            nodes.start()
            nodes.swarm(1024, f"1.0.{next(version)}", timeout)  # the seed: every sample is an upgrade
            for k in range(warmups + repetitions):
                update = nodes.update(size, f"1.0.{next(version)}", timeout) if publish else None
                swarm = nodes.swarm(size, f"1.0.{next(version)}", timeout)
                if k >= warmups:
                    if update is not None:
                        updates.append(update)
                    swarms.append(swarm)
            stats = nodes.close()
        except BaseException:
            nodes.peers.close()
            raise
        shaping = bed.shaping()
        delay_line = bed.delay_stats()
    archive = swarms[0][0].archive_bytes
    common = {
        "followers": followers,
        "hosts": followers + 1,
        "archive_bytes": archive,
        "repetitions": repetitions,
        "warmups": warmups,
        "one_link_seconds": round(one_link, 3),
        "node_peak_rss_mib": max(s.get("peak_rss_mib", 0) for s in stats.values()),
        "testbed": shaping,
        "delay_line": delay_line,
    }
    swarm_seconds = [run.seconds for run, _, _ in swarms]
    baseline_extra = {
        **common,
        "origin_upload_over_archive": round(statistics.median([sent / archive for _, sent, _ in swarms]), 3),
        "origin_chunk_bytes_over_archive": round(
            statistics.median([run.origin_upload / archive for run, _, _ in swarms]), 3
        ),
        "origin_tx_over_archive": round(statistics.median([tx / archive for _, _, tx in swarms]), 3),
        "from_peers_over_archive": round(
            statistics.median([run.from_peers / archive for run, _, _ in swarms]), 3
        ),
        "layout": "distribute_service(strategy='swarm') from host 0 to the 15 followers, interleaved with the updates",
    }
    extra: dict[str, Any] = {}
    if updates:
        median = statistics.median([u.seconds for u in updates])
        extra = {
            **common,
            "publisher_upload_over_archive": round(
                statistics.median([u.upload / archive for u in updates]), 3
            ),
            "publisher_upload_bytes": [u.upload for u in updates],
            "publisher_tx_over_archive": round(statistics.median([u.tx_bytes / archive for u in updates]), 3),
            "publish_call_seconds": round(statistics.median([u.publish_seconds for u in updates]), 3),
            "first_follower_seconds": round(statistics.median([min(u.follower_seconds) for u in updates]), 3),
            "updates_from_publisher": [u.from_publisher for u in updates],
            "announced_accepted": [u.announced_accepted for u in updates],
            "swarm_seconds": [round(s, 3) for s in swarm_seconds],
            "over_swarm_same_run": round(median / statistics.median(swarm_seconds), 3),
            "layout": "1 publisher node + 1 follower node per other testbed host, each its own process",
        }
        delivered = [u.delivered for u in updates if u.delivered is not None]
        if delivered:
            extra["delivered"] = delivered
    return {
        "samples": [u.seconds for u in updates],
        "extra": extra,
        "baseline": swarm_seconds,
        "baseline_extra": baseline_extra,
    }


def _measure(
    size: int, workdir: Path, *, repetitions: int, warmups: int, with_project: bool, stop: threading.Event
) -> dict[str, Any]:
    return measure(size, workdir, repetitions=repetitions, warmups=warmups, publish=with_project, stop=stop)


_RUN = PairedRun("auto_update_n16", _measure, requires)
baseline = _RUN.baseline
project = _RUN.project


def unavailable_reason() -> str | None:
    reason = testbed.unavailable_reason()
    if reason is not None:
        return f"the testbed cannot run here: {reason}"
    return requires_here()


def main() -> int:
    """``project_update.py [--mib M] [--reps R] [--warmups W]``: measure and print the JSON figures."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Measure a published release reaching its followers.")
    parser.add_argument("--followers", type=int, default=FOLLOWERS)
    parser.add_argument("--mib", type=float, default=16.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="p2p-update-bench-") as work:
        figures = measure(
            int(args.mib * MIB), Path(work), followers=args.followers, repetitions=args.reps,
            warmups=args.warmups,
        )  # fmt: skip
    samples, swarm = figures["samples"], figures["baseline"]
    print(json.dumps({
        "seconds": samples, "median": statistics.median(samples),
        "swarm_seconds": swarm, "swarm_median": statistics.median(swarm),
        "ratio": round(statistics.median(samples) / statistics.median(swarm), 3),
        **figures["extra"], "swarm": figures["baseline_extra"],
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
