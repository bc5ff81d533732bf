"""The fork server's own process: import the runtime once, then fork one service process per request.

The node starts it as ``runner.py --fork-server`` (see
:mod:`~p2p_orchestrator.runtime.fork_server` for the node's side).  It imports
what every asyncio service process imports (anyio, asyncio, the service host,
the framework, the wire codec, the sandbox), moves those objects out of the
garbage collector's reach (:func:`gc.freeze`, so that collections in the
children do not write to, and so unshare, the pages they live on), and then
serves requests on the socket it inherited, one at a time, never starting a
thread (``fork`` in a threaded process is unsafe).

For each request it forks.  The child becomes exactly what a freshly started
runner would be before it reads its arguments: its own process group,
``PR_SET_PDEATHSIG`` towards the fork server (which has the same towards the
node, so no child outlives the node), the service's output pipe as stdout and
stderr, ``/dev/null`` as stdin, no descriptor but those and its channel, the
service's working directory and environment.  :func:`serve` then *returns* in
the child, with the runner's arguments, and the runner's ``main`` runs as if
started by ``exec``: nothing of the service is imported before the fork, so
each service still gets a fresh ``sys.path`` and module table of its own.

The parent opens a pidfd of the child before answering, so the node watches
exactly that process even if it exits at once, and it reaps each child
itself: when a child's pidfd is readable it kills what the child left in its
process group, reaps it and tells the node its exit status.

Messages are single CBOR maps on a ``SOCK_SEQPACKET`` socket:

========================================= =======================================================
node -> fork server                        fork server -> node
========================================= =======================================================
``{"id", "argv", "cwd", "env"}`` + 2 fds   ``{"ready": pid}`` once, when the imports are done
(the channel socket, the output pipe)      ``{"id", "pid"}`` + the child's pidfd, or ``{"id", "error"}``
..                                         ``{"exited": pid, "status": returncode}``
========================================= =======================================================

When the node closes the socket the fork server exits, and the children that
are left die with it.  It ignores SIGTERM and SIGINT (its children get the
default handlers back): a stop signal sent to every process of the node, as
systemd sends it, reaches the services and the node, which stops them in order.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import selectors
import signal
import socket
import sys
from typing import Any

import cbor2

from p2p_orchestrator.runtime._prctl import die_with_parent, name_process
from p2p_orchestrator.runtime.protocol import EXIT_START_FAILED

__all__ = ["PRELOADED", "preload", "serve"]

PRELOADED = (
    "argparse",
    "asyncio",
    "ctypes",
    "faulthandler",
    "logging",
    "resource",
    "anyio",
    "anyio._backends._asyncio",
    "anyio.streams.stapled",
    "p2p_orchestrator.runtime._host",
    "p2p_orchestrator.runtime._sandbox",
)
"""What the fork server imports once for every service process (the runner's own imports on asyncio)."""

MAX_MESSAGE = 1 << 20


def preload() -> None:
    """Import :data:`PRELOADED` with the collector off, then freeze every object so far out of its reach.

    As :func:`gc.freeze` advises for a process that forks without ``exec``: no
    collection leaves freed holes in the pages the children share, and none in a
    child walks (and so writes to) the frozen objects; each child turns the
    collector back on.  Reference counts still write to the pages of the objects
    a child uses, so sharing is page by page, not complete.
    """
    gc.disable()
    for name in PRELOADED:
        importlib.import_module(name)
    gc.freeze()


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = cbor2.dumps(message)
    try:
        if fds:
            socket.send_fds(sock, [data], fds)
        else:
            sock.send(data)
    except (BrokenPipeError, ConnectionResetError):
        os._exit(0)  # the node is gone: so are we (and, by PR_SET_PDEATHSIG, our children)


class _Server:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ)
        self.children: dict[int, int] = {}  # pidfd -> pid
        self.pid = os.getpid()

    def serve(self) -> list[str]:
        _send(self.control, {"ready": os.getpid()})
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    argv = self._request()
                    if argv is not None:
                        return argv  # in a forked child
                else:
                    self._reap(key.fd)

    def _request(self) -> list[str] | None:
        data, fds, _flags, _address = socket.recv_fds(self.control, MAX_MESSAGE, 2)
        if not data:
            os._exit(0)  # the node is gone or done: the children left die with us (PDEATHSIG)
        ident: Any = None
        try:
            request = cbor2.loads(data)
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
            ident = request["id"]
            argv, cwd, env = request["argv"], request["cwd"], request["env"]
            _expect_descriptors(fds)
            pid = os.fork()
            if pid == 0:
                return self._become_child(list(argv), str(cwd), dict(env), fds)
            try:
                self._forked(ident, pid)
            except BaseException:  # a child nobody would watch: end it now
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise
        except Exception as exc:  # a bad request costs that request only; the node logs the answer
            _send(self.control, {"id": ident, "error": f"{type(exc).__name__}: {exc}"})
        for fd in fds:  # the parent's copies; the child has its own
            os.close(fd)
        return None

    def _forked(self, ident: Any, pid: int) -> None:
        with contextlib.suppress(OSError):  # also done by the child: whichever runs first
            os.setpgid(pid, pid)
        pidfd = os.pidfd_open(pid)
        try:
            _send(self.control, {"id": ident, "pid": pid}, [pidfd])
        except BaseException:
            os.close(pidfd)
            raise
        self.children[pidfd] = pid
        self.selector.register(pidfd, selectors.EVENT_READ)

    def _become_child(self, argv: list[str], cwd: str, env: dict[str, str], fds: list[int]) -> list[str]:
        channel, output = fds
        try:
            os.setpgid(0, 0)
            die_with_parent(self.pid)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the fork server ignores them (see serve)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            name_process(argv[0])
            gc.enable()
            self.selector.close()
            self.control.close()
            for pidfd in self.children:
                os.close(pidfd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.close(null)
            os.close(output)
            os.closerange(3, channel)
            os.closerange(channel + 1, os.sysconf("SC_OPEN_MAX"))
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(2, f"[runner] cannot set up the forked process: {exc}\n".encode())
            os._exit(EXIT_START_FAILED)
        sys.argv = [sys.argv[0], *argv, "--fd", str(channel)]
        return [*argv, "--fd", str(channel)]

    def _reap(self, pidfd: int) -> None:
        pid = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        # a zombie's process group id cannot be reused: kill what it left in its group, then reap it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        _send(self.control, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})


def _expect_descriptors(fds: list[int]) -> None:
    if len(fds) != 2:
        raise ValueError(f"expected 2 descriptors (channel, output), got {len(fds)}")


def serve(control_fd: int) -> list[str]:
    """Serve fork requests on ``control_fd`` until the node closes it (then exit).

    Returns only in a forked child: the runner's arguments for that child.
    """
    # a SIGTERM sent to every process of the node's cgroup (systemd's stop) must not end the fork
    # server, and with it every service at once, before the node stopped them one by one
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return _Server(socket.socket(fileno=control_fd)).serve()
