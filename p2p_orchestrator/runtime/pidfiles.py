"""Records of running service processes, so a node can clean up after its predecessor.

Each running service has ``home/run/<service>.pid``, a small JSON object with the
child's pid, its ``/proc`` start time and its process group.  The kernel kills
children whose node dies (``PR_SET_PDEATHSIG``), but a node that is SIGKILLed at
the wrong instant, or a service that started processes of its own, can leave
some behind.  When a node opens its home it calls :func:`reap_orphans`, which
kills every recorded process that still exists *and is the same process* (same
start time: a recycled pid is left alone), with its process group.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from p2p_orchestrator._files import create_temporary
from p2p_orchestrator.runtime._procfs import process_exists, process_start_ticks

__all__ = ["PidRecord", "PidFiles"]

log = logging.getLogger("p2p_orchestrator.runtime")


@dataclass(frozen=True)
class PidRecord:
    """One service process as recorded on disk."""

    service: str
    pid: int
    start_ticks: int
    pgid: int


class PidFiles:
    """The ``run/`` directory of one node home."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, service: str) -> Path:
        return self.directory / f"{service}.pid"

    def write(self, service: str, pid: int, pgid: int) -> PidRecord | None:
        """Record a freshly started child; ``None`` if it already exited.

        ``OSError`` when the record cannot be written (a full disk); no partial
        file is left.
        """
        ticks = process_start_ticks(pid)
        if ticks is None:
            return None
        record = PidRecord(service, pid, ticks, pgid)
        path = self._path(service)
        tmp = path.with_suffix(".tmp")
        try:
            with os.fdopen(create_temporary(tmp), "w") as file:
                file.write(
                    json.dumps({"pid": pid, "start_ticks": ticks, "pgid": pgid, "node_pid": os.getpid()})
                )
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return record

    def remove(self, service: str) -> None:
        """Forget a child that has been reaped."""
        self._path(service).unlink(missing_ok=True)

    def read_all(self) -> list[PidRecord]:
        """Every record, skipping (and logging) unreadable ones.

        A ``<service>.tmp`` is a record a node was writing when it was killed:
        it is read too (if whole) and removed, so its process is not missed and
        no debris stays.
        """
        records = []
        for path in sorted([*self.directory.glob("*.pid"), *self.directory.glob("*.tmp")]):
            try:
                data = json.loads(path.read_text())
                records.append(
                    PidRecord(path.stem, int(data["pid"]), int(data["start_ticks"]), int(data["pgid"]))
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("Ignoring unreadable pid file %s: %s", path, exc)
                path.unlink(missing_ok=True)
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
        return records

    def reap_orphans(self, *, wait: float = 5.0) -> list[PidRecord]:
        """Kill the recorded processes of a previous node that still run; return them.

        Blocking (it waits up to ``wait`` seconds for the kills to take effect): run it
        in a worker thread.  The processes are not our children, so they cannot be
        reaped here; their parent (init) does that.
        """
        killed = []
        for record in self.read_all():
            if process_start_ticks(record.pid) == record.start_ticks:
                log.warning(
                    "Killing orphaned process %d of service %s left by a previous node",
                    record.pid,
                    record.service,
                )
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(record.pgid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)
                killed.append(record)
            self.remove(record.service)
        deadline = time.monotonic() + wait
        while any(process_exists(r.pid) for r in killed) and time.monotonic() < deadline:
            time.sleep(0.01)
        return killed
