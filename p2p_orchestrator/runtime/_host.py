"""The child side: host one service instance and serve the node's requests.

:func:`serve` is what the runner runs, under ``anyio.run`` on the event loop the
service's manifest chose (``"event_loop"``: ``"asyncio"``, the default, or
``"trio"``).  It is written once with anyio, so everything below behaves the same
on both loops, and a process on asyncio never imports trio.  In order it:

1. greets the node over the inherited socket and receives the service's
   name, configuration and timeouts in the node's :class:`Hello`;
2. gives the service a clean ``sys.path``, imports ``main.py``, instantiates
   ``Run``, binds it and awaits ``initialize()``; any failure is sent to the node
   as ``ErrorReply(None, error)`` and the process exits with
   :data:`~p2p_orchestrator.runtime.protocol.EXIT_START_FAILED`;
3. says ``runner/ready`` with the exposed methods, then serves
   ``service/<method>`` calls concurrently, and ``runner/health`` probes, until
   the node asks ``runner/stop``;
4. awaits ``cleanup()`` (bounded by the grace period the node gave), answers,
   and exits 0 once the node has closed the channel.

A method that raises is an error for its caller, never for the process; the
exceptions are ``sys.exit()`` (the process exits with that code, as the service
asked) and :class:`MemoryError` (the process exits with
:data:`~p2p_orchestrator.runtime.protocol.EXIT_OUT_OF_MEMORY`: after hitting its
memory limit its state cannot be trusted, and the supervisor restarts it).

The node sends at most ``max_concurrent_calls`` service calls at once, and the
channel accepts that many plus :data:`~p2p_orchestrator.runtime.protocol.RESERVED_REQUESTS`,
so a health probe or a stop request always finds a free slot (see
:mod:`~p2p_orchestrator.runtime.health` for why probes are not starved).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from p2p_orchestrator._rpc_session import ANYIO_STREAM_GONE
from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceCallError, ServiceManagementError
from p2p_orchestrator.framework import BaseService, NodeProxy, ServiceManager, set_global_service_manager
from p2p_orchestrator.framework._background import set_spawner
from p2p_orchestrator.framework.caller import CallerInfo, set_caller
from p2p_orchestrator.runtime._channel import FramedChannel
from p2p_orchestrator.runtime._compat_imports import install_framework_aliases
from p2p_orchestrator.runtime._loader import isolate_path, load_service
from p2p_orchestrator.runtime.protocol import (
    EXIT_CHANNEL_LOST,
    EXIT_OUT_OF_MEMORY,
    EXIT_START_FAILED,
    RESERVED_REQUESTS,
    RUNNER_CALL,
    RUNNER_HEALTH,
    RUNNER_METRICS,
    RUNNER_READY,
    RUNNER_STOP,
    SERVICE_PREFIX,
)
from p2p_orchestrator.wire import ErrorReply, Hello, Request, RpcConnection

__all__ = ["serve"]

log = logging.getLogger("p2p_orchestrator.runner")

_CLOSE_WAIT = 5.0  # seconds to wait for the node to close the channel after the stop answer


def _node_proxy(channel: FramedChannel, timeout: float, peer_names: frozenset[str]) -> NodeProxy:
    """The proxy a service gets: its calls travel to the node as ``runner/call``."""

    async def transport(method: str, params: dict[str, Any], peer: str | None) -> Any:
        return await channel.call(
            RUNNER_CALL, {"method": method, "params": params, "peer": peer}, time_limit=timeout
        )

    return NodeProxy(transport, peer_names)


class _Host:
    def __init__(self, name: str) -> None:
        self.name = name
        self.instance: BaseService | None = None
        self.ready = False
        self.exit_code: int | None = None
        self.stopped_politely = False
        self.finished = anyio.Event()

    def finish(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
        self.finished.set()

    async def handle(self, request: Request) -> Any:
        if request.method.startswith(SERVICE_PREFIX):
            return await self._call(request.method.removeprefix(SERVICE_PREFIX), request.params)
        if request.method == RUNNER_HEALTH:
            return await self._health()
        if request.method == RUNNER_STOP:
            return await self._stop(request.params)
        if request.method == RUNNER_METRICS:
            return self._metrics()
        raise ServiceCallError(f"the runner does not know {request.method!r}", code="unknown_method")

    async def _call(self, method: str, request: dict[str, Any]) -> Any:
        path = f"{self.name}/{method}"
        params = request.get("params")
        if not isinstance(params, dict):
            raise ServiceCallError(f"{path}: the node sent no parameters", code="bad_params")
        set_caller(CallerInfo.from_wire(request.get("caller")))
        if self.instance is None or not self.ready:
            raise ServiceCallError(f"{path}: the service is not running", code="service_not_running")
        info = self.instance.exposed_methods().get(method)
        if info is None:
            raise ServiceCallError(
                f"service {self.name!r} has no exposed method {method!r}", code="unknown_method"
            )
        bound = getattr(self.instance, method)
        try:
            inspect.signature(bound).bind(**params)
        except TypeError as exc:
            raise ServiceCallError(f"bad parameters for {path}: {exc}", code="bad_params") from None
        try:
            return await bound(**params)
        except OrchestratorError:
            raise
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            self.finish(code)
            raise ServiceCallError(
                f"{path} called sys.exit({exc.code!r}); the service exits", code="service_exited"
            ) from None
        except MemoryError:
            self.finish(EXIT_OUT_OF_MEMORY)
            raise ServiceCallError(
                f"{path} ran out of memory (memory limit reached); the service restarts", code="out_of_memory"
            ) from None
        except Exception as exc:
            traceback.print_exc()
            raise ServiceCallError(
                f"{path} raised {type(exc).__name__}: {exc}", code="method_failed"
            ) from None

    async def _health(self) -> dict[str, Any]:
        """Answer a probe: ``{"healthy": bool, "error": str | None, "detail": ...}``.

        A service without ``health_check`` is healthy whenever its event loop
        answers.  ``health_check()`` that raises is unhealthy; one that returns a
        map says so with its ``"healthy"`` key (default true; the whole map is the
        detail); ``None`` is healthy; any other value counts by its truth.
        """
        if self.instance is None or not self.ready:
            return {"healthy": False, "error": "the service is not running", "detail": None}
        check = getattr(self.instance, "health_check", None)
        if check is None:
            return {"healthy": True, "error": None, "detail": None}
        try:
            result = await check()
        except SystemExit as exc:
            self.finish(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
            return {
                "healthy": False,
                "error": f"health_check() called sys.exit({exc.code!r})",
                "detail": None,
            }
        except MemoryError:
            self.finish(EXIT_OUT_OF_MEMORY)
            return {"healthy": False, "error": "health_check() ran out of memory", "detail": None}
        except Exception as exc:
            return {
                "healthy": False,
                "error": f"health_check() raised {type(exc).__name__}: {exc}",
                "detail": None,
            }
        if isinstance(result, Mapping):
            healthy = bool(result.get("healthy", True))
            error = None if healthy else str(result.get("error") or "health_check() reported unhealthy")
            return {"healthy": healthy, "error": error, "detail": dict(result)}
        healthy = result is None or bool(result)
        error = None if healthy else f"health_check() returned {result!r}"
        return {"healthy": healthy, "error": error, "detail": None}

    def _metrics(self) -> dict[str, Any]:
        """``runner/metrics``: the service's own metrics (no await: never waits)."""
        if self.instance is None:
            return {"metrics": None}
        return {"metrics": self.instance.metrics.snapshot()}

    async def _stop(self, params: dict[str, Any]) -> dict[str, Any]:
        grace = params.get("grace", 5.0)
        grace = float(grace) if isinstance(grace, int | float) else 5.0
        result: dict[str, Any] = {"cleaned_up": True}
        if self.instance is not None and self.ready:
            self.ready = False
            with anyio.move_on_after(grace) as timer:
                try:
                    await self.instance.stop()
                except Exception as exc:
                    traceback.print_exc()
                    result = {"cleaned_up": False, "error": f"cleanup() raised {type(exc).__name__}: {exc}"}
            if timer.cancelled_caught:
                result = {"cleaned_up": False, "error": f"cleanup() did not finish within {grace:g} s"}
        self.stopped_politely = True
        self.finish(0)
        return result


async def _start(host: _Host, channel: FramedChannel, hello: Hello, service_dir: Path, root: Path) -> None:
    """Load, bind and initialize the service; raises :class:`ServiceManagementError`."""
    info = hello.info
    config = info.get("config", {})
    call_timeout = info.get("call_timeout", 30.0)
    peers = info.get("peer_names", [])
    peer_names = frozenset(p for p in peers if isinstance(p, str)) if isinstance(peers, list) else frozenset()
    version, description = info.get("version"), info.get("description")
    proxy = _node_proxy(channel, float(call_timeout), peer_names)
    isolate_path(service_dir, root)
    install_framework_aliases()
    instance = load_service(host.name, service_dir, proxy)
    instance.bind(
        name=host.name,
        config=config if isinstance(config, dict) else {},
        proxy=proxy,
        version=version if isinstance(version, str) else None,
        description=description if isinstance(description, str) else None,
        data_dir=Path.cwd(),
    )
    manager = ServiceManager()
    manager.register(instance)
    set_global_service_manager(manager)
    host.instance = instance
    try:
        await instance.start()
    except MemoryError:
        raise ServiceManagementError(
            f"{host.name}: ran out of memory in initialize() (see the memory limit)", code="out_of_memory"
        ) from None
    except SystemExit as exc:
        raise ServiceManagementError(
            f"{host.name}: initialize() called sys.exit({exc.code!r})", code="initialize_exited"
        ) from None
    except Exception as exc:
        traceback.print_exc()
        raise ServiceManagementError(
            f"{host.name}: initialize() raised {type(exc).__name__}: {exc}; the traceback is in the service's log",
            code="initialize_failed",
        ) from None


async def serve(
    name: str,
    fd: int,
    service_dir: Path,
    root: Path,
    *,
    max_calls: int = 64,
    sandbox: Mapping[str, object] | None = None,
) -> int:
    """Run the service over the channel on ``fd``; return the process exit code.

    ``max_calls`` is the node's ``max_concurrent_calls`` for this service;
    ``sandbox`` (what the runner's confinement did) is told to the node.
    """
    stream = await anyio.abc.UNIXSocketStream.from_socket(socket.socket(fileno=fd))
    host = _Host(name)
    conn = RpcConnection("peer", exchange_hello=True, max_in_flight=max_calls + RESERVED_REQUESTS)
    channel = FramedChannel(stream, conn, handler=host.handle, name="node")
    async with anyio.create_task_group() as tasks:

        async def run_channel() -> None:
            try:
                await channel.run()
            except ProtocolError as exc:
                log.warning("the node broke the channel protocol: %s", exc)
            finally:
                host.finish(EXIT_CHANNEL_LOST)

        tasks.start_soon(run_channel)
        set_spawner(tasks.start_soon)
        hello_info = {"service": name, "pid": os.getpid(), "sandbox": dict(sandbox or {})}
        await channel.send(Hello("service", info=hello_info))
        try:
            hello = await channel.wait_hello()
            await _start(host, channel, hello, service_dir, root)
        except ServiceManagementError as exc:
            await _report_fatal(channel, exc)
            tasks.cancel_scope.cancel()
            return EXIT_START_FAILED
        except OrchestratorError:  # the channel closed before the node's Hello
            tasks.cancel_scope.cancel()
            return EXIT_CHANNEL_LOST
        assert host.instance is not None
        host.ready = True
        methods = {m: info.to_dict() for m, info in host.instance.exposed_methods().items()}
        try:
            await channel.call(RUNNER_READY, {"methods": methods})
        except OrchestratorError:
            host.finish(EXIT_CHANNEL_LOST)
        await host.finished.wait()
        if host.stopped_politely:  # let the answer reach the node, which then closes the channel
            with anyio.move_on_after(_CLOSE_WAIT):
                await channel.wait_closed()
        tasks.cancel_scope.cancel()
    return host.exit_code if host.exit_code is not None else 0


async def _report_fatal(channel: FramedChannel, error: ServiceManagementError) -> None:
    print(f"[runner] start failed: {error.message}", flush=True)  # goes to the service log
    # if the node is gone, the exit code still says what happened
    with contextlib.suppress(OrchestratorError, *ANYIO_STREAM_GONE):
        await channel.send(ErrorReply(None, error))
