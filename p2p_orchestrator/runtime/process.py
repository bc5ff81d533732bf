"""``ServiceProcess``: one child process running one service, and the channel to it.

:meth:`ServiceProcess.launch` is an async context manager: it starts the child,
and the tasks that read its channel, pump its output into the service's log and
watch for its exit, and on leaving (normally, on error or on cancellation)
makes sure the child and its whole process group are dead and reaped::

    async with ServiceProcess.launch(spec, log=..., pidfiles=..., on_call=...) as proc:
        await proc.wait_ready()          # ServiceManagementError if the start fails
        await proc.call("greet", {"name": "Ada"})
        await proc.stop(grace=5)         # polite, then SIGTERM, then SIGKILL

A service that runs under the node's interpreter is forked by the node's fork
server (:mod:`~p2p_orchestrator.runtime.fork_server`), which has imported the
runtime already; one with a virtual environment of its own, or any service
when the fork server is off or unavailable, is started with
:class:`subprocess.Popen` from the event loop's own
thread, on purpose: ``PR_SET_PDEATHSIG`` (set by the runner) fires when the
*thread* that forked the child exits, and trio's ``open_process`` forks from a
worker thread that exits after 10 idle seconds, which would kill the child.
The fork itself takes about a millisecond.  Exits are awaited through a pidfd.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.abc
import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._rpc_session import ANYIO_STREAM_GONE
from p2p_orchestrator.crashpoints import crashpoint
from p2p_orchestrator.errors import OrchestratorError, ServiceCallError, ServiceManagementError
from p2p_orchestrator.framework.caller import LOCAL, CallerInfo
from p2p_orchestrator.runtime._channel import FramedChannel
from p2p_orchestrator.runtime._spawn import (
    Child,
    pump_output,
    runner_arguments,
    service_environment,
    spawn_runner,
    working_directory,
)
from p2p_orchestrator.runtime.admission import AdmissionLimits, CallAdmission
from p2p_orchestrator.runtime.fork_server import ForkServer, ForkServerError
from p2p_orchestrator.runtime.launch import LaunchSpec
from p2p_orchestrator.runtime.logs import RotatingLog
from p2p_orchestrator.runtime.pidfiles import PidFiles
from p2p_orchestrator.runtime.protocol import (
    RUNNER_CALL,
    RUNNER_HEALTH,
    RUNNER_METRICS,
    RUNNER_READY,
    RUNNER_STOP,
    SERVICE_PREFIX,
    describe_exit,
)
from p2p_orchestrator.wire import Hello, Request, RpcConnection

__all__ = ["LaunchSpec", "ProxyCall", "ServiceProcess"]

log = logging.getLogger("p2p_orchestrator.runtime")

_TERM_WAIT = 2.0  # seconds between SIGTERM and SIGKILL
_EXIT_WAIT = 2.0  # seconds for the runner to exit once it answered the stop request
_REAP_WAIT = 5.0  # seconds to wait for a SIGKILLed child to be reaped
_DRAIN_WAIT = 0.5  # seconds to read the output left in the pipe after the child exited

ProxyCall = Callable[[str, str, dict[str, Any], str | None], Awaitable[Any]]
"""How a service's proxy call is carried out: ``(service, method, params, peer) -> result``."""


class ServiceProcess:
    """One incarnation of a service; see the module docstring."""

    def __init__(self, spec: LaunchSpec, child: Child, channel: FramedChannel, pidfiles: PidFiles) -> None:
        self.spec = spec
        self.pid = child.pid
        self.started_at = utc_now_iso()
        self.started_monotonic = time.monotonic()
        self.returncode: int | None = None
        self.methods: dict[str, dict[str, Any]] = {}
        self.sandbox: dict[str, Any] = {}
        """What the runner's Landlock confinement did: ``requested``, ``applied``, ``abi``, ``network``."""
        """The exposed methods the service reported when ready: ``{name: {"public": ...}}``."""
        self.start_error: OrchestratorError | None = None
        self._child = child
        self._pidfd = child.open_pidfd()
        self._watching = False
        self._pidfiles = pidfiles
        self._channel = channel
        self._call_slots = trio.Semaphore(max(1, spec.max_concurrent_calls))
        self.admission = CallAdmission(spec.name, AdmissionLimits.for_slots(spec.max_concurrent_calls))
        """Which calls from other nodes this process takes (see :mod:`~p2p_orchestrator.runtime.admission`)."""
        self._ready = False
        self._settled = trio.Event()
        self._exited = trio.Event()

    # -- life ------------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def launch(
        cls,
        spec: LaunchSpec,
        *,
        log: RotatingLog,
        pidfiles: PidFiles,
        on_call: ProxyCall,
        forks: ForkServer | None = None,
    ) -> AsyncIterator[ServiceProcess]:
        """Start the child (forked by ``forks`` if it can); kill and reap it (and its process group) on the way out."""
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_read, out_write = os.pipe()
        try:
            child = await _start(spec, child_sock.fileno(), out_write, forks)
        except OSError as exc:
            parent_sock.close()
            os.close(out_read)
            raise ServiceManagementError(
                f"cannot start a process for {spec.name}: {exc}", code="spawn_failed"
            ) from exc
        except BaseException:  # cancelled while the fork server forked
            parent_sock.close()
            os.close(out_read)
            raise
        finally:
            child_sock.close()
            os.close(out_write)
        try:
            crashpoint("runtime.spawn.before_pidfile")
            pidfiles.write(spec.name, child.pid, child.pid)
            crashpoint("runtime.spawn.after_pidfile")
        except OSError as exc:  # a full disk: a process we cannot record is not left running
            child.kill()
            await child.wait()
            child.close()
            parent_sock.close()
            os.close(out_read)
            raise ServiceManagementError(
                f"cannot record the process of {spec.name} in {pidfiles.directory}: {exc}; it was stopped",
                code="write_failed",
            ) from exc
        log.write(f"--- {utc_now_iso()} starting {spec.name} {spec.version} (pid {child.pid}) ---\n".encode())
        stream = await anyio.abc.UNIXSocketStream.from_socket(parent_sock)
        conn = RpcConnection("peer", exchange_hello=True)
        channel = FramedChannel(stream, conn, name=f"service {spec.name}")
        try:
            proc = cls(spec, child, channel, pidfiles)
        except BaseException:  # e.g. no pidfd support (Linux < 5.3): never leave the child behind
            child.kill()
            with trio.CancelScope(shield=True):
                await child.wait()
            child.close()
            parent_sock.close()
            os.close(out_read)
            raise
        channel.handler = lambda request: proc._handle(request, on_call)
        channel.on_notice = proc._on_notice
        pumped = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proc._watch_exit)
                nursery.start_soon(proc._run_channel)
                nursery.start_soon(pump_output, trio.lowlevel.FdStream(out_read), log, pumped)
                hello = Hello(
                    "orchestrator",
                    info={
                        "service": spec.name,
                        "version": spec.version,
                        "description": spec.description,
                        "config": spec.config,
                        "call_timeout": spec.call_timeout,
                        "peer_names": sorted(spec.peer_names),
                    },
                )
                try:
                    await channel.send(hello)
                except OrchestratorError as exc:
                    proc.start_error = ServiceManagementError(
                        f"{spec.name}: its configuration cannot be sent to the process: {exc.message}",
                        code="bad_service_config",
                    )
                    proc._settled.set()
                except ANYIO_STREAM_GONE:
                    pass  # the child died at once; the exit watcher reports it
                try:
                    yield proc
                finally:
                    with trio.CancelScope(shield=True):
                        await proc._kill_and_reap()
                        await channel.aclose()
                        with trio.move_on_after(_DRAIN_WAIT):  # output still in the pipe
                            await pumped.wait()
                    nursery.cancel_scope.cancel()
        finally:
            os.close(proc._pidfd)
            child.close()
            log.write(
                f"--- {utc_now_iso()} {spec.name} (pid {proc.pid}) ended: "
                f"{describe_exit(proc.returncode) if proc.returncode is not None else 'unknown'} ---\n".encode()
            )

    async def _watch_exit(self) -> None:
        self._watching = True
        try:
            await trio.lowlevel.wait_readable(self._pidfd)
            await self._reap()
        finally:
            self._watching = False

    async def _reap(self) -> None:
        """Collect the exited child (its pidfd is readable), and kill what it left in its process group."""
        if self._exited.is_set():
            return
        self.returncode = await self._child.reap()
        self._pidfiles.remove(self.spec.name)
        self._exited.set()
        self._settled.set()

    async def _run_channel(self) -> None:
        try:
            await self._channel.run()
        except OrchestratorError as exc:
            log.warning("Channel to %s (pid %d) broke: %s; killing it", self.spec.name, self.pid, exc)
            self.kill()
        self._settled.set()

    # -- start ---------------------------------------------------------------------------------

    def _note_sandbox(self) -> None:
        """Record what the runner's confinement did (its Hello says), and say it loudly if it did not."""
        hello = self._channel.conn.peer_hello
        report = hello.info.get("sandbox") if hello is not None else None
        self.sandbox = dict(report) if isinstance(report, dict) else {}
        if self.spec.sandbox and not self.sandbox.get("applied"):
            log.warning(
                "Service %s runs UNCONFINED: this kernel offers no Landlock, so it can reach all the "
                "node's files (set [runtime] sandbox = false to silence this on purpose)",
                self.spec.name,
            )

    async def _handle(self, request: Request, on_call: ProxyCall) -> Any:
        if request.method == RUNNER_READY:
            methods = request.params.get("methods")
            self.methods = methods if isinstance(methods, dict) else {}
            self._note_sandbox()
            self._ready = True
            self._settled.set()
            return {}
        if request.method == RUNNER_CALL:
            method, params, peer = (request.params.get(k) for k in ("method", "params", "peer"))
            if (
                not isinstance(method, str)
                or not isinstance(params, dict)
                or not isinstance(peer, str | None)
            ):
                raise ServiceCallError(
                    "runner/call needs 'method' (text), 'params' (map), 'peer'", code="bad_params"
                )
            return await on_call(self.spec.name, method, params, peer)
        raise ServiceCallError(
            f"the node does not serve {request.method!r} to services", code="unknown_method"
        )

    def _on_notice(self, error: OrchestratorError) -> None:
        self.start_error = error
        self._settled.set()

    async def wait_ready(self) -> None:
        """Wait until the service is initialized; raise :class:`ServiceManagementError` if it fails.

        The process is killed when the start fails or takes longer than the
        spec's ``start_timeout``.
        """
        with trio.move_on_after(self.spec.start_timeout):
            await self._settled.wait()
        if self._ready:
            return
        name = self.spec.name
        if self.start_error is not None:
            error = ServiceManagementError(self.start_error.message, code=self.start_error.code)
        elif not self._settled.is_set():
            error = ServiceManagementError(
                f"{name} did not finish starting within {self.spec.start_timeout:g} s "
                "(importing main.py or initialize() never returned); its process was killed",
                code="start_timeout",
            )
        else:
            with trio.move_on_after(1.0):
                await self._exited.wait()
            status = describe_exit(self.returncode) if self.returncode is not None else "its channel closed"
            error = ServiceManagementError(f"{name} exited while starting ({status})", code="start_failed")
        self.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(_REAP_WAIT):
            await self._exited.wait()
        raise error

    # -- running -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready and self.returncode is None

    async def call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        time_limit: float | None = None,
        caller: CallerInfo = LOCAL,
    ) -> Any:
        """Call an exposed method; the service's error, or ``service_exited`` if it dies meanwhile.

        ``caller`` is what the service's ``current_caller()`` tells it.

        At most ``max_concurrent_calls`` calls are sent to the process at once;
        the others wait here for a turn, within the same ``time_limit``.
        """
        limit = self.spec.call_timeout if time_limit is None else time_limit
        deadline = trio.current_time() + limit
        acquired = False
        with trio.move_on_at(deadline):
            await self._call_slots.acquire()
            acquired = True
        if not acquired:
            raise ServiceCallError(
                f"{self.spec.name}/{method} did not get a turn within {limit:g} s: the service is running "
                f"{self.spec.max_concurrent_calls} calls at once (max_concurrent_calls)",
                code="call_timeout",
            )
        try:
            return await self._channel.call(
                SERVICE_PREFIX + method,
                {"params": params, "caller": caller.to_wire()},
                time_limit=max(0.0, deadline - trio.current_time()),
            )
        except ServiceCallError as exc:
            if exc.code != "channel_closed":
                raise
            with trio.move_on_after(1.0):
                await self._exited.wait()
            status = describe_exit(self.returncode) if self.returncode is not None else "channel closed"
            raise ServiceCallError(
                f"service {self.spec.name} exited during the call to {method} ({status})",
                code="service_exited",
            ) from None
        finally:
            self._call_slots.release()

    async def probe_health(self, time_limit: float) -> Any:
        """Ask the runner for the service's health (see ``runner/health``) within ``time_limit`` seconds.

        Raises :class:`ServiceCallError`: ``call_timeout`` when the runner does not
        answer in time (its event loop is blocked or starved), ``channel_closed``
        when the process is going away.
        """
        return await self._channel.call(RUNNER_HEALTH, {}, time_limit=time_limit)

    async def read_metrics(self, time_limit: float) -> dict[str, Any]:
        """The service's ``metrics`` snapshot (``runner/metrics``), on the priority path."""
        answer = await self._channel.call(RUNNER_METRICS, {}, time_limit=time_limit)
        return answer if isinstance(answer, dict) else {}

    def dump_stacks(self) -> None:
        """Ask the runner to write every thread's stack to the service's log (SIGUSR1, no wait).

        Works while the event loop is blocked: the runner registered
        :mod:`faulthandler` for the signal.
        """
        if self.returncode is None and self._ready and not self._gone():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGUSR1)

    async def wait(self) -> int:
        """Wait for the process to exit; its return code (negative: killed by that signal)."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def stop(self, grace: float, *, polite: bool = True) -> int:
        """Stop the process and return its exit status.

        Polite first: the runner awaits ``cleanup()`` for at most ``0.8 * grace``
        seconds, answers, and exits when the channel closes.  A runner that has not
        answered within ``grace`` seconds (its event loop is blocked), or not exited
        within 2 s of answering, gets SIGTERM, then SIGKILL 2 s later.
        """
        if polite and self._ready and not self._exited.is_set():
            answered = False
            with trio.move_on_after(grace):
                try:
                    answer = await self._channel.call(RUNNER_STOP, {"grace": grace * 0.8})
                    answered = True
                    if isinstance(answer, dict) and answer.get("error"):
                        log.warning("Service %s: %s", self.spec.name, answer["error"])
                except OrchestratorError as exc:
                    log.info("Service %s did not answer the stop request: %s", self.spec.name, exc)
            await self._channel.aclose()  # the runner exits when the channel closes
            if answered:
                with trio.move_on_after(_EXIT_WAIT):
                    await self._exited.wait()
        if not self._exited.is_set():
            log.warning("Service %s (pid %d) did not stop in %g s: SIGTERM", self.spec.name, self.pid, grace)
            self._signal(signal.SIGTERM)
            with trio.move_on_after(_TERM_WAIT):
                await self._exited.wait()
        if not self._exited.is_set():
            log.warning("Service %s (pid %d) ignored SIGTERM: SIGKILL", self.spec.name, self.pid)
        await self._kill_and_reap()
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the child and its process group (no wait)."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        # once it exited its pid may be reaped and reused (the fork server reaps on its own);
        # whatever it left in its group is killed when it is reaped
        if self.returncode is None and not self._gone():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def _gone(self) -> bool:
        """Whether the process exited (its pidfd is readable), reaped or not."""
        return bool(select.select([self._pidfd], [], [], 0)[0])

    async def _kill_and_reap(self) -> None:
        """SIGKILL the child unless it exited, and wait until it is reaped."""
        if self._exited.is_set():
            return
        self.kill()
        with trio.move_on_after(_REAP_WAIT):
            if self._watching:
                await self._exited.wait()
            else:  # the watcher was cancelled with everything else: wait here
                await trio.lowlevel.wait_readable(self._pidfd)
                await self._reap()
        if not self._exited.is_set():  # cannot happen short of a kernel problem; never leave a zombie
            self.returncode = await self._child.wait()
            self._exited.set()


async def _start(spec: LaunchSpec, fd: int, output: int, forks: ForkServer | None) -> Child:
    """The service's process: forked by the fork server when it runs under the node's interpreter."""
    if forks is not None and forks.available and spec.python == sys.executable:
        working = working_directory(spec)
        env = service_environment(spec.name, working, spec.environment)
        try:
            return await forks.fork(runner_arguments(spec), working, env, (fd, output))
        except ForkServerError as exc:
            log.warning("The fork server did not start %s (%s): starting a new interpreter", spec.name, exc)
    return spawn_runner(spec, fd, output)
