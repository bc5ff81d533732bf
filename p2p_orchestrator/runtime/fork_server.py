"""``ForkServer``: the node's warm process that forks service processes instead of starting interpreters.

A new service process used to spend most of its start importing the runtime
(anyio, asyncio, the service host, the framework, the wire codec): every
start paid it again, and every idle service kept its own copy of those
modules in memory.  The fork server (:mod:`~p2p_orchestrator.runtime._zygote`)
is one small process per node that has imported them once and forks a child
per start.  The child runs the runner's ``main`` exactly as a started runner
would, so what the runtime guarantees a service holds on either path:

* a fresh ``sys.path`` and module table (nothing of any service is imported
  before the fork), its own process group, its own working directory and
  environment, its channel and output pipe as its only descriptors;
* no child outlives the node: the fork server has ``PR_SET_PDEATHSIG`` towards
  the node's thread that started it, and each child towards the fork server;
* its event loop is started in the child, and the Landlock sandbox is applied
  in the child before the service's code is imported;
* nothing is shared between services but the pages of the modules the fork
  server imported, copy-on-write.

Two things a fork inherits that an ``exec`` would renew: the address-space
layout (ASLR) and the string-hash secret are the fork server's, so the same
in every service of the node.  ``[runtime] fork_server = false`` starts every
service with a new interpreter instead.

Only services that run under the node's own interpreter are forked; a service
with a virtual environment of its own is started with its interpreter, as
before.  If the fork server dies, the children it forked die with it (the
supervisor sees them exit and restarts them) and the next start begins a new
one; if one cannot be started at all the node starts interpreters and says so.
"""

from __future__ import annotations

import array
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cbor2
import trio

from p2p_orchestrator.runtime._spawn import PACKAGE_ROOT, RUNNER, base_environment

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["ForkServer", "ForkedChild", "open_fork_server"]

log = logging.getLogger("p2p_orchestrator.runtime")

_READY_WAIT = 10.0  # seconds for a new fork server to finish its imports
_ANSWER_WAIT = 10.0  # seconds the fork server may go without a word while a fork request waits
_RETRY_AFTER = 60.0  # seconds without a fork server after one did not start in time
_REPORT_WAIT = 5.0  # seconds for the fork server's report of a child's exit status, once the child exited
_STOP_WAIT = 5.0  # seconds for the fork server to exit once its socket is closed
_MAX_MESSAGE = 65536


class ForkServerError(Exception):
    """The fork server could not fork this start (the caller starts an interpreter instead)."""


class ForkedChild:
    """A service process the fork server forked: the node watches it by pidfd, the fork server reaps it.

    The pidfd was opened by the fork server before the child could be reaped, so
    it names exactly this process; it stays open until :meth:`close`, whatever
    the fork server reports meanwhile.
    """

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._pidfd: int | None = pidfd
        self._returncode: int | None = None
        self._reported = trio.Event()
        self.claimed = True
        """Whether a start owns it (else it was cancelled meanwhile, and the exit report closes it)."""

    def open_pidfd(self) -> int:
        if self._pidfd is None:
            raise ProcessLookupError(f"process {self.pid} is closed")
        return os.dup(self._pidfd)

    def kill(self) -> None:
        if self._pidfd is not None and not self._reported.is_set():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def kill_group(self) -> None:
        """SIGKILL its process group (it and what it started), while the group still exists."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def disown(self) -> None:
        """Nobody will watch it (its start was cancelled): kill it; its exit report closes it."""
        self.claimed = False
        self.kill()
        if self._reported.is_set():
            self.close()

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def reported(self, returncode: int) -> None:
        """The fork server reaped it (or died, and so killed it: ``-SIGKILL``)."""
        if not self._reported.is_set():
            self._returncode = returncode
            self._reported.set()
        if not self.claimed:
            self.close()

    async def reap(self) -> int:
        with trio.move_on_after(_REPORT_WAIT):
            await self._reported.wait()
        if not self._reported.is_set():
            log.warning("The fork server did not report how process %d ended", self.pid)
            self.kill_group()
            self.reported(-signal.SIGKILL)
        assert self._returncode is not None
        return self._returncode

    async def wait(self) -> int:
        await self._reported.wait()
        assert self._returncode is not None
        return self._returncode


class _Zygote:
    """One fork server process, its socket, and what it was asked."""

    def __init__(self, popen: subprocess.Popen[bytes], sock: trio.socket.SocketType) -> None:
        self.popen = popen
        self.sock = sock
        self.ready = trio.Event()
        self.gone = trio.Event()
        self.settled = trio.Event()
        """Set when it is ready or gone, whichever comes first."""
        self.pending: dict[int, tuple[trio.Event, list[Any]]] = {}
        self.children: dict[int, ForkedChild] = {}
        self.send_lock = trio.Lock()
        self.heard = 0.0
        """When it last said anything (it serves requests one by one: under load, a queue forms)."""

    def stop(self) -> None:
        """Kill it (it stopped answering); its children die with it."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()


class ForkServer:
    """Forks service processes from a warm process; see the module docstring.

    Made by :func:`open_fork_server`, which owns its tasks and its process.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._zygote: _Zygote | None = None
        self._ids = count(1)
        self._start_lock = trio.Lock()
        self._broken = False
        self._retry_at = 0.0

    @property
    def available(self) -> bool:
        """Whether a start should ask the fork server (else: a new interpreter, and no wait)."""
        return not self._broken and trio.current_time() >= self._retry_at

    @property
    def pid(self) -> int | None:
        """The fork server's pid while one runs."""
        zygote = self._zygote
        return zygote.popen.pid if zygote is not None and not zygote.gone.is_set() else None

    async def fork(
        self, argv: list[str], cwd: Path, env: Mapping[str, str], fds: tuple[int, int]
    ) -> ForkedChild:
        """Fork a runner with ``argv`` (and ``--fd``) in ``cwd`` with ``env``; ``fds``: its channel, its output.

        Raises :class:`ForkServerError` when no fork server can do it.  The caller
        owns the child: it calls :meth:`ForkedChild.close` when done with it.
        """
        zygote = await self._running()
        ident = next(self._ids)
        done = trio.Event()
        answer: list[Any] = []
        zygote.pending[ident] = (done, answer)
        message = cbor2.dumps({"id": ident, "argv": argv, "cwd": str(cwd), "env": dict(env)})
        try:
            async with zygote.send_lock:
                await zygote.sock.sendmsg(
                    [message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
                )
            await _wait_answer(zygote, done)
        except OSError as exc:
            raise ForkServerError(f"the fork server is gone: {exc}") from exc
        except BaseException:  # cancelled: a child forked meanwhile has no owner
            if answer and isinstance(answer[0], ForkedChild):
                answer[0].disown()
            raise
        finally:
            zygote.pending.pop(ident, None)
        if not done.is_set():
            log.warning(
                "The fork server (pid %d) did not answer in %g s: killing it", zygote.popen.pid, _ANSWER_WAIT
            )
            zygote.stop()
            raise ForkServerError("the fork server did not answer")
        if not answer:
            raise ForkServerError("the fork server exited before answering")
        child = answer[0]
        if isinstance(child, str):
            raise ForkServerError(child)
        assert isinstance(child, ForkedChild)
        return child

    async def _running(self) -> _Zygote:
        async with self._start_lock:
            if not self.available:
                raise ForkServerError("no fork server for now")
            zygote = self._zygote
            if zygote is None or zygote.gone.is_set():
                zygote = await self._nursery.start(self._run_zygote)
                assert zygote is not None
                self._zygote = zygote
            with trio.move_on_after(_READY_WAIT):
                await zygote.settled.wait()
            if zygote.ready.is_set() and not zygote.gone.is_set():
                return zygote
            if zygote.ready.is_set():
                raise ForkServerError("the fork server exited")
            if zygote.gone.is_set():  # it failed before its imports were done: it will fail again
                self._broken = True
                log.warning("The fork server could not start: every service is started as a new interpreter")
            else:
                zygote.stop()
                self._retry_at = trio.current_time() + _RETRY_AFTER
                log.warning(
                    "The fork server did not start in %g s: services are started as new interpreters "
                    "for %g s",
                    _READY_WAIT,
                    _RETRY_AFTER,
                )
            raise ForkServerError("the fork server did not start")

    async def _run_zygote(self, *, task_status: TaskStatus[_Zygote]) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # from the event loop's thread, as in process.py: PR_SET_PDEATHSIG follows the forking thread
            popen = subprocess.Popen(  # noqa: ASYNC220 (a fork: about a millisecond)
                [
                    sys.executable,
                    "-I",
                    "-u",
                    str(RUNNER),
                    "--fork-server",
                    "--fd",
                    str(child.fileno()),
                    "--parent",
                    str(os.getpid()),
                    "--root",
                    str(PACKAGE_ROOT),
                ],
                cwd="/",
                env=base_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # it writes nothing but errors, to the node's stderr
                pass_fds=(child.fileno(),),
                close_fds=True,
                process_group=0,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        zygote = _Zygote(popen, trio.socket.from_stdlib_socket(parent))
        try:
            task_status.started(zygote)
            await self._read(zygote)
        except Exception:  # a bug here must cost the fork server, not the node
            log.exception("The fork server's messages could not be read: ending it")
        finally:
            zygote.gone.set()
            zygote.settled.set()
            # PR_SET_PDEATHSIG kills its children when it exits; what they started is killed here
            for forked in zygote.children.values():
                forked.kill_group()
                forked.reported(-signal.SIGKILL)
            zygote.sock.close()
            for done, _ in zygote.pending.values():
                done.set()
            with trio.CancelScope(shield=True):
                await _end(popen)

    async def _read(self, zygote: _Zygote) -> None:
        while True:
            try:
                data, ancillary, _flags, _address = await zygote.sock.recvmsg(
                    _MAX_MESSAGE, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC
                )
            except OSError as exc:
                log.warning("The fork server's socket failed: %s", exc)
                return
            if not data:
                if zygote.ready.is_set():
                    log.warning(
                        "The fork server (pid %d) exited; the next start begins a new one", zygote.popen.pid
                    )
                return
            zygote.heard = trio.current_time()
            fds = _received_fds(ancillary)
            message = cbor2.loads(data)
            if "exited" in message:
                forked = zygote.children.pop(message["exited"], None)
                if forked is not None:
                    forked.reported(int(message["status"]))
            elif "ready" in message:
                zygote.ready.set()
                zygote.settled.set()
            else:
                self._answer(zygote, message, fds)

    def _answer(self, zygote: _Zygote, message: dict[str, Any], fds: list[int]) -> None:
        waiter = zygote.pending.get(message.get("id", -1))
        pid = message.get("pid")
        if isinstance(pid, int) and len(fds) == 1:
            forked = ForkedChild(pid, fds[0])
            zygote.children[pid] = forked
            if waiter is None:  # its start was cancelled meanwhile: nobody will watch it
                forked.disown()
            result: Any = forked
        else:
            for fd in fds:
                os.close(fd)
            if isinstance(pid, int):  # forked, but its pidfd did not arrive: it must not run unwatched
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # the fork server has not reaped it: it reports it first
            result = str(message.get("error", "the fork server sent no pidfd"))
        if waiter is not None:
            done, answer = waiter
            answer.append(result)
            done.set()


async def _wait_answer(zygote: _Zygote, done: trio.Event) -> None:
    """Wait for ``done`` while the fork server makes progress; return after :data:`_ANSWER_WAIT` s of silence."""
    started = trio.current_time()
    while not done.is_set():
        last = max(zygote.heard, started)
        if trio.current_time() - last >= _ANSWER_WAIT:
            return
        with trio.move_on_at(last + _ANSWER_WAIT):
            await done.wait()


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


async def _end(popen: subprocess.Popen[bytes]) -> None:
    """Wait for the fork server to exit (its socket is closed), SIGKILL it if it does not, reap it."""
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError as exc:  # cannot happen short of running out of descriptors: reap it the slow way
        log.warning("Cannot watch the fork server's exit (%s); killing it", exc)
        popen.kill()
        await trio.to_thread.run_sync(popen.wait)
        return
    try:
        with trio.move_on_after(_STOP_WAIT) as waited:
            await trio.lowlevel.wait_readable(pidfd)
        if waited.cancelled_caught:
            popen.kill()
            await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    popen.wait()


@asynccontextmanager
async def open_fork_server() -> AsyncIterator[ForkServer]:
    """A fork server for this node, started on first use; closing it ends its process (and its children)."""
    async with trio.open_nursery() as nursery:
        server = ForkServer(nursery)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
