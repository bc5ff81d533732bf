#!/usr/bin/env python3
"""A testbed of N hosts on one shaped LAN, built from Linux network namespaces (issue 6).

Each host is a network namespace with loopback and one interface, ``eth0``, whose veth peer
is a port of a bridge in a switch namespace of its own.  Every host link is capped with
``tc tbf`` in both directions (the host's ``eth0`` for its upload, the switch port for its
download) and adds a one-way delay, so host-to-host round trips take ``2 * delay_ms``:

* ``netem`` backend: ``tc netem`` on each host's ``eth0`` (tbf as its child), when the kernel
  has ``sch_netem``;
* ``userspace`` backend, when it does not (e.g. kernels built without ``CONFIG_NET_SCH_NETEM``):
  every frame entering a switch port is redirected (``tc`` ingress, ``u32`` + ``mirred``) to a
  TAP device, held ``delay_ms`` by the keeper process and written back into the bridge through a
  second TAP.  One FIFO with one constant delay never reorders.  The TAPs use offloads, so
  TCP's large (GSO) frames cross whole and the tbf qdiscs still cut them to wire size; the
  keeper runs SCHED_FIFO where allowed (it mostly sleeps: ~30% of a core when 16 hosts move
  ~120 Mbit/s in total) and reports how late it released frames in :meth:`Testbed.delay_stats`
  (measured here: under 0.1% of frames more than 1 ms late, on a machine with load 20-30).

Nothing lives in the root namespace: every address (``10.213.0.0/24`` by default) exists only
inside the namespaces a testbed made, which all share the prefix ``p2po-<pid>-<seq>-``.

Everything made is removed when the testbed ends, also on failure: :meth:`Testbed.close` (the
``with`` block's end, so exceptions and Ctrl-C), and a keeper process in its own session that
tears the testbed down when its owner dies without closing it (SIGTERM, SIGKILL, a crash).
``down --all`` removes what a killed keeper left behind.

Command line (as root)::

    python scripts/testbed.py check                 # can a testbed run here? (exit 1 with the reason)
    python scripts/testbed.py up 4                  # build 4 hosts, print them, hold until Ctrl-C/SIGTERM
    python scripts/testbed.py run 1 ping -c 3 10.213.0.1   # in host 1 of the testbed that is up
    python scripts/testbed.py measure               # shaping sanity check on 2 hosts (JSON)
    python scripts/testbed.py down --all            # remove leftovers of testbeds whose owner is gone

As a library (stdlib only)::

    with Testbed(4) as bed:
        server = bed.run(1, ["python3", "-m", "http.server", "--bind", bed.address(1)])
        ...                                         # processes started by run() are stopped at the end
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PREFIX",
    "Host",
    "ShapingFigures",
    "Testbed",
    "TestbedError",
    "delay_backend",
    "leftovers",
    "measure_shaping",
    "remove_leftovers",
    "unavailable_reason",
]

PREFIX = "p2po-"
"""Every namespace a testbed makes starts with this (then ``<owner pid>-<seq>-``)."""

_OWNED = re.compile(rf"^({re.escape(PREFIX)}(\d+)-\d+-)")
_SCRIPT = str(Path(__file__).resolve())
_SWITCH = "sw"
_BRIDGE = "br0"
_TAP_OUT = "tdelay-out"
"""Switch-namespace TAP that every frame entering the switch is redirected to (the keeper reads it)."""
_TAP_IN = "tdelay-in"
"""Switch-namespace TAP, a bridge port, that the keeper writes delayed frames into."""
_GRACE = 3.0
_MAX_HOSTS = 250
_seq = itertools.count()

Backend = Literal["netem", "userspace", "none"]


class TestbedError(RuntimeError):
    """A testbed could not be built, run a command, or be removed completely."""


# --------------------------------------------------------------------------- commands


def _cmd(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run an ``ip``/``tc``/``bridge`` command; raise :class:`TestbedError` with its stderr on failure."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise TestbedError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _netns_list() -> list[str]:
    proc = _cmd(["ip", "netns", "list"])
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _netns_pids(name: str) -> list[int]:
    proc = _cmd(["ip", "netns", "pids", name], check=False)
    return [int(word) for word in proc.stdout.split() if word.isdigit()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(pids: list[int]) -> None:
    """SIGTERM ``pids``, SIGKILL the ones still there after a grace period."""
    me = os.getpid()
    pids = [pid for pid in pids if pid != me]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _teardown(prefix: str) -> list[str]:
    """Stop every process inside the namespaces named ``prefix*`` and delete them; returns their names."""
    names = [name for name in _netns_list() if name.startswith(prefix)]
    _kill_all([pid for name in names for pid in _netns_pids(name)])
    for name in names:
        _cmd(["ip", "netns", "delete", name], check=False)
    remaining = [name for name in _netns_list() if name.startswith(prefix)]
    if remaining:
        raise TestbedError(f"could not delete network namespaces {remaining}")
    return names


def leftovers(*, include_live: bool = False) -> list[str]:
    """Testbed namespaces whose owner process is gone (all testbed namespaces with ``include_live``)."""
    found = []
    for name in _netns_list():
        owned = _OWNED.match(name)
        if owned and (include_live or not _alive(int(owned.group(2)))):
            found.append(name)
    return found


def remove_leftovers(*, include_live: bool = False) -> list[str]:
    """Remove what :func:`leftovers` finds (their processes first); returns the names removed."""
    prefixes = sorted(
        {m.group(1) for name in leftovers(include_live=include_live) if (m := _OWNED.match(name))}
    )
    return [name for prefix in prefixes for name in _teardown(prefix)]


# --------------------------------------------------------------------------- requirements

_probed: dict[str, tuple[str | None, Backend | None]] = {}


def _probe() -> tuple[str | None, Backend | None]:
    """(why no testbed can run here, or ``None``; the best delay backend this kernel supports)."""
    if "result" in _probed:
        return _probed["result"]
    problems = []
    if not sys.platform.startswith("linux"):
        problems.append(f"needs Linux (this is {sys.platform})")
    elif os.geteuid() != 0:
        problems.append("not root (network namespaces and tc need CAP_NET_ADMIN)")
    problems += [
        f"no `{tool}` command (apt-get install iproute2)"
        for tool in ("ip", "tc", "bridge")
        if not shutil.which(tool)
    ]
    if problems:
        result: tuple[str | None, Backend | None] = ("; ".join(problems), None)
        _probed["result"] = result
        return result
    name = f"{PREFIX}{os.getpid()}-{next(_seq)}-probe"
    backend: Backend | None = None
    reason: str | None = None
    try:
        made = _cmd(["ip", "netns", "add", name], check=False)
        if made.returncode != 0:
            reason = f"cannot create a network namespace: {made.stderr.strip()}"
        else:
            _cmd(["ip", "-n", name, "link", "add", "pa", "type", "veth", "peer", "name", "pb"])
            tbf = _cmd(
                ["tc", "-n", name, "qdisc", "add", "dev", "pa", "root", *_tbf_args(20.0, 16384, 50.0)],
                check=False,
            )
            if tbf.returncode != 0:
                reason = f"no tbf qdisc (sch_tbf) in this kernel: {tbf.stderr.strip()}"
            elif (
                _cmd(
                    ["tc", "-n", name, "qdisc", "add", "dev", "pb", "root", "netem", "delay", "5ms"],
                    check=False,
                ).returncode
                == 0
            ):
                backend = "netem"
            elif not os.path.exists("/dev/net/tun"):
                reason = "no netem qdisc (sch_netem) and no /dev/net/tun for the userspace delay line"
            else:
                redirect = [
                    ["tc", "-n", name, "qdisc", "add", "dev", "pb", "handle", "ffff:", "ingress"],
                    ["tc", "-n", name, "filter", "add", "dev", "pb", "parent", "ffff:", "protocol", "all",
                     "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "pa"],
                ]  # fmt: skip
                for argv in redirect:
                    proc = _cmd(argv, check=False)
                    if proc.returncode != 0:
                        reason = (
                            "no netem qdisc (sch_netem), and the userspace delay line needs tc ingress, u32 "
                            f"and mirred: {' '.join(argv[3:6])} failed: {proc.stderr.strip()}"
                        )
                        break
                else:
                    backend = "userspace"
    finally:
        _cmd(["ip", "netns", "delete", name], check=False)
    _probed["result"] = (reason, backend)
    return reason, backend


def unavailable_reason() -> str | None:
    """Why a testbed cannot run on this machine (root, iproute2, netns, tbf, a delay), or ``None``."""
    return _probe()[0]


def delay_backend() -> Backend | None:
    """The delay backend ``"auto"`` picks here: ``"netem"``, else ``"userspace"`` (``None``: cannot run)."""
    return _probe()[1]


# --------------------------------------------------------------------------- the testbed


@dataclass(frozen=True)
class Host:
    """One test host: its namespace, its address on the testbed LAN and its interface."""

    index: int
    netns: str
    address: str
    interface: str = "eth0"


def _tbf_args(rate_mbit: float, burst_bytes: int, queue_ms: float) -> list[str]:
    return ["tbf", "rate", f"{rate_mbit}mbit", "burst", str(burst_bytes), "latency", f"{queue_ms}ms"]


class Testbed:
    """N hosts on one bridge, each link capped at ``rate_mbit`` each way and delayed ``delay_ms`` one way.

    Use as a context manager (or :meth:`start` / :meth:`close`).  Host ``i`` has address
    ``<subnet>.<i + 1>``.  ``delay_backend`` is ``"auto"`` (netem where the kernel has it, else
    the userspace delay line), ``"netem"`` or ``"userspace"``; ``delay_ms=0`` shapes the rate only.
    """

    def __init__(
        self,
        hosts: int,
        *,
        rate_mbit: float = 20.0,
        delay_ms: float = 5.0,
        burst_bytes: int = 16384,
        queue_ms: float = 50.0,
        subnet: str = "10.213.0",
        delay_backend: Literal["auto", "netem", "userspace"] = "auto",
    ) -> None:
        if not 1 <= hosts <= _MAX_HOSTS:
            raise ValueError(f"hosts must be 1..{_MAX_HOSTS}, not {hosts}")
        if not re.fullmatch(r"10\.\d{1,3}\.\d{1,3}", subnet):
            raise ValueError(
                f"subnet must be the first three octets of a 10.x.y.0/24 network, not {subnet!r}"
            )
        self.prefix = f"{PREFIX}{os.getpid()}-{next(_seq)}-"
        self.switch = f"{self.prefix}{_SWITCH}"
        self.hosts = [Host(i, f"{self.prefix}{i}", f"{subnet}.{i + 1}") for i in range(hosts)]
        self.rate_mbit = rate_mbit
        self.delay_ms = delay_ms
        self.burst_bytes = burst_bytes
        self.queue_ms = queue_ms
        self.subnet = subnet
        self._requested_backend = delay_backend
        self.backend: Backend = "none"
        self._keeper: subprocess.Popen[bytes] | None = None
        self._keeper_lines = b""
        self._processes: list[subprocess.Popen[Any]] = []
        self._started = False
        self.final_delay_stats: dict[str, Any] | None = None

    # ---- life cycle

    def __enter__(self) -> Testbed:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Build the testbed; on any failure remove what was made and raise."""
        if self._started:
            raise TestbedError("testbed already started")
        reason, best = _probe()
        if reason is not None or best is None:
            raise TestbedError(f"the testbed cannot run here: {reason}")
        if self.delay_ms <= 0:
            self.backend = "none"
        elif self._requested_backend == "auto":
            self.backend = best
        elif self._requested_backend == "netem" and best != "netem":
            raise TestbedError("the netem backend was asked for, but this kernel has no sch_netem")
        else:
            self.backend = self._requested_backend
        self._started = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        sw = self.switch
        _cmd(["ip", "netns", "add", sw])
        self._start_keeper()
        _cmd(["ip", "-n", sw, "link", "set", "lo", "up"])
        _cmd(["ip", "-n", sw, "link", "add", _BRIDGE, "type", "bridge"])
        _cmd(["ip", "-n", sw, "link", "set", _BRIDGE, "up"])
        tbf = _tbf_args(self.rate_mbit, self.burst_bytes, self.queue_ms)
        for host in self.hosts:
            port, mac = f"v{host.index}", f"02:13:00:00:{host.index // 256:02x}:{host.index % 256:02x}"
            _cmd(["ip", "netns", "add", host.netns])
            _cmd(["ip", "-n", host.netns, "link", "set", "lo", "up"])
            _cmd(["ip", "link", "add", host.interface, "netns", host.netns, "address", mac,
                  "type", "veth", "peer", "name", port, "netns", sw])  # fmt: skip
            # No IPv6 link-local address: the only traffic on the LAN is what the tests send.
            _cmd(["ip", "-n", host.netns, "link", "set", host.interface, "addrgenmode", "none"])
            _cmd(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", host.interface])
            _cmd(["ip", "-n", host.netns, "link", "set", host.interface, "up"])
            _cmd(["ip", "-n", sw, "link", "set", port, "addrgenmode", "none"])
            _cmd(["ip", "-n", sw, "link", "set", port, "master", _BRIDGE, "up"])
            if self.backend == "netem":
                _cmd(["tc", "-n", host.netns, "qdisc", "add", "dev", host.interface, "root", "handle", "1:",
                      "netem", "delay", f"{self.delay_ms}ms", "limit", "100000"])  # fmt: skip
                _cmd(["tc", "-n", host.netns, "qdisc", "add", "dev", host.interface, "parent", "1:1",
                      "handle", "10:", *tbf])  # fmt: skip
            else:
                _cmd(["tc", "-n", host.netns, "qdisc", "add", "dev", host.interface, "root", *tbf])
            _cmd(["tc", "-n", sw, "qdisc", "add", "dev", port, "root", *tbf])
            if self.backend == "userspace":
                _cmd(["tc", "-n", sw, "qdisc", "add", "dev", port, "handle", "ffff:", "ingress"])
                _cmd(["tc", "-n", sw, "filter", "add", "dev", port, "parent", "ffff:", "protocol", "all",
                      "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
                      _TAP_OUT])  # fmt: skip
                # Frames reach the bridge only through the keeper's TAP, so ports learn nothing.
                _cmd(["bridge", "-n", sw, "fdb", "add", mac, "dev", port, "master", "static"])
        if self.backend == "userspace":
            _cmd(["ip", "-n", sw, "link", "set", _TAP_OUT, "addrgenmode", "none"])
            _cmd(["ip", "-n", sw, "link", "set", _TAP_OUT, "txqueuelen", "10000", "up"])
            _cmd(["ip", "-n", sw, "link", "set", _TAP_IN, "addrgenmode", "none"])
            _cmd(["ip", "-n", sw, "link", "set", _TAP_IN, "master", _BRIDGE])
            _cmd(["ip", "-n", sw, "link", "set", _TAP_IN, "type", "bridge_slave", "learning", "off"])
            _cmd(["ip", "-n", sw, "link", "set", _TAP_IN, "up"])

    def _start_keeper(self) -> None:
        argv = [sys.executable, _SCRIPT, "_keeper", "--prefix", self.prefix, "--switch", self.switch]
        if self.backend == "userspace":
            argv += ["--delay-ms", str(self.delay_ms)]
        # Its own session: a Ctrl-C or a SIGTERM to our process group leaves it to clean up after us.
        self._keeper = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        ready = self._keeper_line(10.0)
        if json.loads(ready).get("ready") is not True:
            raise TestbedError(f"the testbed keeper did not start: {ready!r}")

    def _keeper_line(self, timeout: float) -> str:
        keeper = self._keeper
        if keeper is None or keeper.stdout is None:
            raise TestbedError("no keeper process")
        fd = keeper.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._keeper_lines:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TestbedError(f"the testbed keeper did not answer within {timeout} s")
            data = os.read(fd, 65536)
            if not data:
                raise TestbedError(f"the testbed keeper exited ({keeper.poll()})")
            self._keeper_lines += data
        line, _, self._keeper_lines = self._keeper_lines.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        """Stop the processes started with :meth:`run`, then remove every namespace and link made.

        Raises :class:`TestbedError` if something could not be removed.
        """
        if not self._started:
            return
        self._started = False
        problems = []
        for proc in self._processes:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + _GRACE
        for proc in self._processes:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        keeper = self._keeper
        if keeper is not None:
            if keeper.poll() is None and keeper.stdin is not None:
                try:
                    keeper.stdin.write(b"down\n")
                    keeper.stdin.close()
                    self.final_delay_stats = json.loads(self._keeper_line(_GRACE * 4)).get("delay")
                except (BrokenPipeError, TestbedError, ValueError) as exc:
                    problems.append(f"keeper: {exc}")
            try:
                keeper.wait(timeout=_GRACE * 4)
            except subprocess.TimeoutExpired:
                problems.append("the keeper did not exit: killed")
                keeper.kill()
                keeper.wait()
            if keeper.stdout is not None:
                keeper.stdout.close()
            if keeper.returncode != 0:
                problems.append(f"the keeper exited with {keeper.returncode}")
        try:
            _teardown(self.prefix)  # idempotent: the keeper has normally done it
        except TestbedError as exc:
            problems.append(str(exc))
        if problems:
            raise TestbedError("testbed teardown: " + "; ".join(problems))

    # ---- use

    def address(self, index: int) -> str:
        """Host ``index``'s IPv4 address on the testbed LAN."""
        return self.hosts[index].address

    def run(self, index: int, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in host ``index`` (``ip netns exec``); it is stopped when the testbed closes.

        ``popen_kwargs`` go to :class:`subprocess.Popen` (``stdout=subprocess.PIPE``, ``env=...``).
        """
        if not self._started:
            raise TestbedError("testbed not started")
        if self._keeper is not None and self._keeper.poll() is not None:
            raise TestbedError(f"the testbed keeper died ({self._keeper.returncode}): the network is down")
        proc = subprocess.Popen(["ip", "netns", "exec", self.hosts[index].netns, *argv], **popen_kwargs)
        self._processes.append(proc)
        return proc

    def delay_stats(self) -> dict[str, Any] | None:
        """The userspace delay line's counters so far (frames, bytes, how late it released frames)."""
        if self.backend != "userspace" or self._keeper is None or self._keeper.stdin is None:
            return self.final_delay_stats
        self._keeper.stdin.write(b"stats\n")
        self._keeper.stdin.flush()
        stats: dict[str, Any] = json.loads(self._keeper_line(10.0))["delay"]
        return stats

    def describe(self) -> dict[str, Any]:
        """The testbed as JSON: its prefix, hosts and shaping."""
        return {
            "prefix": self.prefix,
            "switch": self.switch,
            "hosts": [asdict(host) for host in self.hosts],
            "shaping": self.shaping(),
        }

    def shaping(self) -> dict[str, Any]:
        """How the links are shaped (what a benchmark should report next to its figures)."""
        return {
            "rate_mbit": self.rate_mbit,
            "one_way_delay_ms": self.delay_ms if self.backend != "none" else 0.0,
            "rtt_ms": 2 * self.delay_ms if self.backend != "none" else 0.0,
            "delay_backend": self.backend,
            "tbf_burst_bytes": self.burst_bytes,
            "tbf_latency_ms": self.queue_ms,
        }


# --------------------------------------------------------------------------- the keeper

_CLONE_NEWNET = 0x40000000
_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_IFF_VNET_HDR = 0x4000
_TUNSETOFFLOAD = 0x400454D0
_TUN_F_CSUM, _TUN_F_TSO4, _TUN_F_TSO6 = 0x01, 0x02, 0x04
_MAX_FRAME = 1 << 17
"""Larger than a virtio-net header plus the largest GSO frame (64 KiB) and its Ethernet header."""
_PR_SET_TIMERSLACK = 29


class _Down(Exception):
    """The keeper was told to (or must) tear the testbed down."""


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _open_taps(switch: str) -> tuple[int, int]:
    """Create the two TAP devices in the switch namespace; their fds (out: read, in: write)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{switch}", os.O_RDONLY)
    fds = []
    try:
        _setns(target)
        try:
            for name in (_TAP_OUT, _TAP_IN):
                fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
                fds.append(fd)
                flags = _IFF_TAP | _IFF_NO_PI | _IFF_VNET_HDR
                fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
                # Offloads: TCP's large (GSO) frames and unfinished checksums cross the delay line
                # whole, with their virtio-net header passed through untouched; the tbf qdiscs
                # still cut them to wire-sized packets.  Far fewer frames for the keeper to copy.
                fcntl.ioctl(fd, _TUNSETOFFLOAD, _TUN_F_CSUM | _TUN_F_TSO4 | _TUN_F_TSO6)
        finally:
            _setns(home)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(home)
        os.close(target)
    return fds[0], fds[1]


class _DelayLine:
    """Frames read from one TAP are written to the other ``delay`` seconds later, in order."""

    def __init__(self, tap_out: int, tap_in: int, delay_ms: float, scheduling: str) -> None:
        self.tap_out, self.tap_in = tap_out, tap_in
        self.scheduling = scheduling
        self.delay = delay_ms / 1000
        self.queue: deque[tuple[float, bytes]] = deque()
        self.frames = self.bytes = self.late_1ms = self.peak_queue = self.write_errors = 0
        self.max_late = 0.0

    def read(self) -> None:
        """Queue the frames waiting on the out-TAP (at most 512: writes must not starve)."""
        # One timestamp for the batch: the frames were all waiting in the kernel when we looked.
        due = time.monotonic() + self.delay
        append, read, fd = self.queue.append, os.read, self.tap_out
        for _ in range(512):
            try:
                frame = read(fd, _MAX_FRAME)
            except BlockingIOError:
                break
            append((due, frame))
        self.peak_queue = max(self.peak_queue, len(self.queue))

    def release(self) -> float | None:
        """Write the frames that are due; seconds until the next one is (``None``: queue empty)."""
        queue = self.queue
        now = time.monotonic()
        write, fd = os.write, self.tap_in
        frames = sent = late_1ms = 0
        max_late = self.max_late
        while queue and queue[0][0] <= now:
            due, frame = queue.popleft()
            try:
                write(fd, frame)
            except OSError as exc:  # the kernel refused one frame (e.g. a full backlog): count it
                if exc.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.EIO):
                    raise
                self.write_errors += 1
            late = now - due
            if late > 0.001:
                late_1ms += 1
                max_late = max(max_late, late)
            frames += 1
            sent += len(frame)
        self.frames += frames
        self.bytes += sent
        self.late_1ms += late_1ms
        self.max_late = max_late
        return max(0.0, queue[0][0] - time.monotonic()) if queue else None

    def stats(self) -> dict[str, Any]:
        return {
            "delay_ms": self.delay * 1000,
            "frames": self.frames,
            "bytes": self.bytes,
            "frames_late_over_1ms": self.late_1ms,
            "max_late_ms": round(self.max_late * 1000, 3),
            "peak_queue_frames": self.peak_queue,
            "write_errors": self.write_errors,
            "scheduling": self.scheduling,
            "keeper_user_seconds": round(os.times()[0], 3),
            "keeper_system_seconds": round(os.times()[1], 3),
        }


def _prioritize() -> str:
    """Let the delay line run before the programs using the network: real-time if allowed, else nice.

    It sleeps between frames and uses a fraction of a core, so SCHED_FIFO (priority 10, under the
    kernel's real-time throttling) keeps its release times exact on a loaded machine.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except PermissionError:  # e.g. a container without real-time budget
        os.nice(-10)
        return "nice -10"
    return "SCHED_FIFO 10"


def _keeper_main(prefix: str, switch: str, delay_ms: float | None) -> int:
    """Hold the delay line (if any) until told ``down`` or the owner goes away; then tear down."""

    def on_signal(signum: int, frame: object) -> None:
        raise _Down(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    line: dict[str, Any] = {}
    taps: tuple[int, int] | None = None
    scheduling = "normal"
    try:
        try:
            if delay_ms is not None:
                scheduling = _prioritize()
                ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)  # 1 µs timer slack
                taps = _open_taps(switch)
            print(json.dumps({"ready": True}), flush=True)
            line = {"delay": _serve(taps, delay_ms, scheduling)}
        except _Down as exc:
            line = {"down": str(exc)}
        finally:
            if taps is not None:
                for fd in taps:
                    os.close(fd)
        line["removed"] = _teardown(prefix)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        raise
    print(json.dumps(line), flush=True)
    return 0


def _serve(taps: tuple[int, int] | None, delay_ms: float | None, scheduling: str) -> dict[str, Any] | None:
    """Run the delay line and answer ``stats`` until ``down`` or end of input; the final counters."""
    stdin = sys.stdin.buffer.fileno()
    os.set_blocking(stdin, False)
    line = _DelayLine(taps[0], taps[1], delay_ms or 0.0, scheduling) if taps is not None else None
    watched = [stdin] if line is None else [stdin, line.tap_out]
    pending = b""
    wait: float | None = None
    while True:
        # select(), not poll()/epoll(): its timeout has microsecond resolution, theirs milliseconds.
        ready, _, _ = select.select(watched, [], [], wait)
        if line is not None and line.tap_out in ready:
            line.read()
        if stdin in ready:
            data = os.read(stdin, 4096)
            if not data:
                return line.stats() if line is not None else None
            pending += data
            while b"\n" in pending:
                command, _, pending = pending.partition(b"\n")
                if command == b"down":
                    return line.stats() if line is not None else None
                if command == b"stats":
                    print(json.dumps({"delay": line.stats() if line is not None else None}), flush=True)
        wait = line.release() if line is not None else None


# --------------------------------------------------------------------------- shaping check


@dataclass(frozen=True)
class ShapingFigures:
    """What the links measured like: TCP goodput one way, and round-trip time (TCP connect)."""

    throughput_mbit: float
    rtt_ms: float
    rtt_ms_min: float
    rtt_samples: int
    bytes: int
    seconds: float
    rate_mbit: float
    expected_rtt_ms: float
    delay_backend: str


def measure_shaping(
    bed: Testbed, a: int = 0, b: int = 1, *, nbytes: int = 4 << 20, connects: int = 10, port: int = 5201
) -> ShapingFigures:
    """TCP from host ``a`` to host ``b``: median connect time (one RTT) and goodput of ``nbytes``."""
    server = bed.run(
        b, [sys.executable, _SCRIPT, "_probe-server", bed.address(b), str(port)], stdout=subprocess.PIPE
    )
    try:
        if server.stdout is None or server.stdout.readline().strip() != b"listening":
            raise TestbedError("the shaping probe server did not start")
        argv = [
            sys.executable,
            _SCRIPT,
            "_probe-client",
            bed.address(b),
            str(port),
            str(nbytes),
            str(connects),
        ]
        client = bed.run(a, argv, stdout=subprocess.PIPE)
        out, _ = client.communicate(timeout=60 + nbytes / 1e6)
        if client.returncode != 0:
            raise TestbedError(f"the shaping probe client failed ({client.returncode})")
        figures = json.loads(out)
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=_GRACE)
        if server.stdout is not None:
            server.stdout.close()
    shaping = bed.shaping()
    return ShapingFigures(
        throughput_mbit=figures["bytes"] * 8 / figures["seconds"] / 1e6,
        rtt_ms=statistics.median(figures["rtt_ms"]),
        rtt_ms_min=min(figures["rtt_ms"]),
        rtt_samples=len(figures["rtt_ms"]),
        bytes=figures["bytes"],
        seconds=figures["seconds"],
        rate_mbit=shaping["rate_mbit"],
        expected_rtt_ms=shaping["rtt_ms"],
        delay_backend=shaping["delay_backend"],
    )


def _probe_server(address: str, port: int) -> int:
    with socket.create_server((address, port)) as server:
        print("listening", flush=True)
        while True:
            conn, _ = server.accept()
            with conn:
                kind = conn.recv(1)
                if kind != b"T":
                    continue  # an RTT probe: connect and close
                expected = int.from_bytes(_recv_exactly(conn, 8), "big")
                received, first = 0, 0.0
                while received < expected:
                    data = conn.recv(1 << 20)
                    if not data:
                        raise ConnectionError(f"sender stopped after {received} of {expected} bytes")
                    if not received:
                        first = time.perf_counter()
                    received += len(data)
                elapsed = time.perf_counter() - first
                conn.sendall(json.dumps({"bytes": received, "seconds": elapsed}).encode() + b"\n")
                return 0


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            raise ConnectionError("connection closed early")
        data += more
    return data


def _probe_client(address: str, port: int, nbytes: int, connects: int) -> int:
    rtts = []
    for _ in range(connects):
        started = time.perf_counter()
        with socket.create_connection((address, port), timeout=10):
            rtts.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    with socket.create_connection((address, port), timeout=30) as conn:
        conn.sendall(b"T" + nbytes.to_bytes(8, "big"))
        block = os.urandom(1 << 16)
        sent = 0
        while sent < nbytes:
            piece = block[: min(len(block), nbytes - sent)]
            conn.sendall(piece)
            sent += len(piece)
        answer = json.loads(conn.makefile("rb").readline())
    print(json.dumps({**answer, "rtt_ms": rtts}), flush=True)
    return 0


# --------------------------------------------------------------------------- command line


def _hold(bed: Testbed) -> None:
    print(json.dumps(bed.describe(), indent=2), flush=True)
    print(f"testbed up; in another shell: python {sys.argv[0]} run 0 ip addr   (Ctrl-C ends it)", flush=True)
    while True:
        signal.pause()


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)  # end like Ctrl-C: tear down, exit 0


def _current_prefix(given: str | None) -> str:
    if given:
        return given
    prefixes = sorted({m.group(1) for name in leftovers(include_live=True) if (m := _OWNED.match(name))})
    if len(prefixes) != 1:
        raise TestbedError(f"{len(prefixes)} testbeds are up ({prefixes}): name one with --prefix")
    return prefixes[0]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="say whether a testbed can run here, and with which delay backend")
    up = sub.add_parser("up", help="build N hosts and hold them until Ctrl-C or SIGTERM")
    up.add_argument("hosts", type=int)
    up.add_argument("--rate-mbit", type=float, default=20.0)
    up.add_argument("--delay-ms", type=float, default=5.0, help="one-way host-to-host delay")
    up.add_argument("--backend", choices=("auto", "netem", "userspace"), default="auto")
    run = sub.add_parser("run", help="run a command in host I of the testbed that is up")
    run.add_argument("--prefix", help="the testbed's namespace prefix (when several are up)")
    run.add_argument("index", type=int)
    run.add_argument("argv", nargs=argparse.REMAINDER)
    measure = sub.add_parser("measure", help="build 2 hosts and measure their link (JSON)")
    measure.add_argument("--bytes", type=int, default=4 << 20)
    measure.add_argument("--backend", choices=("auto", "netem", "userspace"), default="auto")
    down = sub.add_parser("down", help="remove testbed namespaces left behind (by prefix)")
    down.add_argument("prefix", nargs="?", help=f"remove this testbed ({PREFIX}<pid>-<seq>-)")
    down.add_argument("--all", action="store_true", help="every testbed whose owner process is gone")
    down.add_argument("--force", action="store_true", help="with --all: also those whose owner is alive")
    keeper = sub.add_parser("_keeper")
    keeper.add_argument("--prefix", required=True)
    keeper.add_argument("--switch", required=True)
    keeper.add_argument("--delay-ms", type=float)
    for name in ("_probe-server", "_probe-client"):
        probe = sub.add_parser(name)
        probe.add_argument("address")
        probe.add_argument("port", type=int)
        if name == "_probe-client":
            probe.add_argument("nbytes", type=int)
            probe.add_argument("connects", type=int)
    args = parser.parse_args(argv)

    if args.command == "_keeper":
        return _keeper_main(args.prefix, args.switch, args.delay_ms)
    if args.command == "_probe-server":
        return _probe_server(args.address, args.port)
    if args.command == "_probe-client":
        return _probe_client(args.address, args.port, args.nbytes, args.connects)
    if args.command == "check":
        reason = unavailable_reason()
        print(f"testbed unavailable: {reason}" if reason else f"testbed available (delay: {delay_backend()})")
        return 1 if reason else 0
    if args.command == "down":
        if args.prefix:
            removed = _teardown(args.prefix)
        elif args.all:
            removed = remove_leftovers(include_live=args.force)
        else:
            parser.error("down needs a PREFIX or --all")
        print(json.dumps({"removed": removed}))
        return 0
    if args.command == "run":
        if not args.argv:
            parser.error("run needs a command")
        netns = f"{_current_prefix(args.prefix)}{args.index}"
        if netns not in _netns_list():
            raise TestbedError(f"no host {args.index} ({netns})")
        return subprocess.call(["ip", "netns", "exec", netns, *args.argv])
    reason = unavailable_reason()
    if reason:
        print(f"testbed unavailable: {reason}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.command == "measure":
        with Testbed(2, delay_backend=args.backend) as bed:
            print(json.dumps(asdict(measure_shaping(bed, nbytes=args.bytes)), indent=2))
            print(json.dumps({"delay_line": bed.delay_stats()}))
        return 0
    with (
        contextlib.suppress(KeyboardInterrupt),
        Testbed(
            args.hosts, rate_mbit=args.rate_mbit, delay_ms=args.delay_ms, delay_backend=args.backend
        ) as bed,
    ):
        _hold(bed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
