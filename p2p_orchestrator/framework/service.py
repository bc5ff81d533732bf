"""``BaseService`` and the ``service_method`` decorator.

A service is a class named ``Run`` in the service's ``main.py``.  Services are
written for asyncio by default, as P2P Core's are::

    import asyncio
    from service_framework import BaseService, service_method

    class Run(BaseService):
        SERVICE_NAME = "hello"

        async def initialize(self):
            self.greeting = self.config.get("greeting", "Hello")
            self.ticker = asyncio.create_task(self.tick())

        async def tick(self):
            while True:
                self.metrics.increment("ticks")
                await asyncio.sleep(1)

        async def cleanup(self):
            self.ticker.cancel()

        @service_method(description="Greets someone", public=True, requires_auth=False)
        async def greet(self, name: str = "world"):
            return {"message": f"{self.greeting}, {name}!"}

The runner creates the instance as ``Run(name, proxy)`` when its ``__init__``
takes them (P2P Core's ``__init__(self, service_name, proxy_client=None)``),
else as ``Run()``; then it binds the name, the merged configuration and the
proxy and awaits :meth:`BaseService.start`, which awaits ``initialize()``.
Only methods marked with :func:`service_method` can be called from outside the
instance; only ``public=True`` ones from other nodes; and from a peer without a
role only those with ``requires_auth=False``.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from p2p_orchestrator.framework._background import run_soon
from p2p_orchestrator.framework.metrics import ServiceMetrics
from p2p_orchestrator.framework.proxy import ServiceProxy
from p2p_orchestrator.framework.status import ServiceInfo, ServiceStatus

__all__ = ["BaseService", "MethodInfo", "service_method"]

_MARK = "__service_method__"
_CACHE_ENTRIES = 256
"""Results one ``cache_ttl`` method keeps per instance (the oldest go first)."""

_EXPOSED: weakref.WeakKeyDictionary[type, dict[str, MethodInfo]] = weakref.WeakKeyDictionary()
"""Each service class's exposed methods, found once (walking the MRO on every call costs)."""
_SIGNATURES: weakref.WeakKeyDictionary[type, dict[str, inspect.Signature]] = weakref.WeakKeyDictionary()
"""The signatures of each class's exposed functions (``self`` included), computed once."""

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class MethodInfo:
    """What the framework knows of one exposed method (the arguments of :func:`service_method`)."""

    name: str
    description: str
    public: bool
    requires_auth: bool = True
    cache_ttl: float = 0
    track_metrics: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form the runner reports to the node."""
        return {
            "name": self.name,
            "description": self.description,
            "public": self.public,
            "requires_auth": self.requires_auth,
            "cache_ttl": self.cache_ttl,
            "track_metrics": self.track_metrics,
        }


def service_method(
    description: str = "",
    public: bool = True,
    cache_ttl: float = 0,
    requires_auth: bool = True,
    track_metrics: bool = True,
) -> Callable[[F], F]:
    """Mark an ``async def`` method of a service as callable through the orchestrator.

    * ``public=False`` keeps the method for callers on the service's own node
      (other local services, the node's operator), never other peers.
    * ``requires_auth=True`` (the default) lets a peer call a public method only
      if it has a role on this node (``reader`` at least); ``False`` lets any
      peer call it when the node's ``[access] unknown_peers`` is ``"public"``.
    * ``cache_ttl`` > 0: a result is kept that many seconds per set of
      parameters, and calls with the same parameters get it without running
      the method again.
    * ``track_metrics`` (default true) counts ``method_<name>_calls``,
      ``_success`` and ``_errors`` and times ``method_<name>_duration_ms`` in
      the instance's ``metrics``.
    """
    if not isinstance(description, str):
        raise TypeError("service_method(description=...) must be a string; write @service_method(...)")
    if not isinstance(cache_ttl, int | float) or isinstance(cache_ttl, bool) or cache_ttl < 0:
        raise TypeError("service_method(cache_ttl=...) must be a number of seconds, 0 or more")

    def mark(func: F) -> F:
        checked: Any = func  # keep `func` typed as F: iscoroutinefunction would narrow it
        if not inspect.iscoroutinefunction(checked):
            raise TypeError(f"@service_method needs an 'async def' method; {func.__qualname__} is not")
        info = MethodInfo(
            func.__name__,
            description,
            bool(public),
            bool(requires_auth),
            float(cache_ttl),
            bool(track_metrics),
        )
        exposed: Any = func
        if info.track_metrics or info.cache_ttl > 0:
            exposed = _instrumented(func, info)
        setattr(exposed, _MARK, info)
        # the attribute names P2P Core's framework sets, for code that reads them
        exposed._service_method = True
        exposed._service_description = info.description
        exposed._service_public = info.public
        exposed._service_cache_ttl = info.cache_ttl
        exposed._service_requires_auth = info.requires_auth
        exposed._service_track_metrics = info.track_metrics
        result: F = exposed
        return result

    return mark


def _instrumented(func: Callable[..., Awaitable[Any]], info: MethodInfo) -> Callable[..., Awaitable[Any]]:
    """``func`` with its metrics and its result cache (``functools.wraps`` keeps its signature)."""
    calls, success, errors = (f"method_{info.name}_{what}" for what in ("calls", "success", "errors"))
    duration = f"method_{info.name}_duration_ms"

    @functools.wraps(func)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        cache = _result_cache(self, info) if info.cache_ttl > 0 else None
        key = _cache_key(args, kwargs) if cache is not None else None
        if cache is not None and key is not None:
            hit = cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        metrics = getattr(self, "metrics", None) if info.track_metrics else None
        if not isinstance(metrics, ServiceMetrics):
            result = await func(self, *args, **kwargs)
        else:
            metrics.increment(calls)
            started = time.perf_counter()
            try:
                result = await func(self, *args, **kwargs)
            except Exception:
                metrics.increment(errors)
                raise
            else:
                metrics.increment(success)
            finally:
                metrics.timer(duration, (time.perf_counter() - started) * 1000.0)
        if cache is not None and key is not None:
            cache[key] = (time.monotonic() + info.cache_ttl, result)
            cache.move_to_end(key)
            while len(cache) > _CACHE_ENTRIES:
                cache.popitem(last=False)
        return result

    return method


def _result_cache(instance: Any, info: MethodInfo) -> OrderedDict[Any, tuple[float, Any]] | None:
    try:
        caches: dict[str, OrderedDict[Any, tuple[float, Any]]] = instance.__dict__.setdefault(
            "_service_method_cache", {}
        )
    except AttributeError:  # an instance without a __dict__ gets no cache
        return None
    return caches.setdefault(info.name, OrderedDict())


def _cache_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The parameters as a dict key; ``None`` when they cannot be one (then nothing is cached)."""
    key: Any = (args, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:
        try:
            key = json.dumps([args, kwargs], sort_keys=True)
        except (TypeError, ValueError):
            return None
    return key


class BaseService:
    """Base class of every service's ``Run`` class.

    Attributes, from ``__init__`` on (P2P Core's names, and this project's):

    * ``service_name`` (also ``name``): the service's name, its archive's top
      directory (whatever ``SERVICE_NAME`` or ``__init__`` said).
    * ``status``: a :class:`ServiceStatus`; ``state`` is its text.
    * ``info``: a :class:`ServiceInfo` (version, description, exposed methods...).
    * ``metrics``: the service's :class:`ServiceMetrics`.
    * ``logger``: a :mod:`logging` logger named ``service.<name>``.
    * ``proxy``: calls to other services and nodes (see
      :class:`~p2p_orchestrator.framework.proxy.ServiceProxy`), or ``None`` when
      the instance runs outside an orchestrator (in a unit test).
    * ``config``: the merged configuration (``manifest.configuration``, overlaid by
      ``config/default.json``, overlaid by the node operator's settings), from
      ``initialize()`` on.
    * ``data_dir``: the directory the service may write (its working directory),
      kept across upgrades; ``None`` outside an orchestrator.
    """

    SERVICE_NAME: ClassVar[str] = ""

    service_name: str
    config: dict[str, Any]
    proxy: ServiceProxy | None
    status: ServiceStatus
    info: ServiceInfo
    metrics: ServiceMetrics
    logger: logging.Logger
    data_dir: Path | None = None

    def __init__(self, service_name: str | None = None, proxy_client: ServiceProxy | None = None) -> None:
        self.proxy = proxy_client
        self._setup(service_name or type(self).SERVICE_NAME)

    def _setup(self, name: str) -> None:
        """Everything ``__init__`` sets but the proxy (the runner also calls it for a ``Run`` that skipped it)."""
        self.service_name = name
        self.config = {}
        self.status = ServiceStatus.NOT_INITIALIZED
        self.info = ServiceInfo(
            name=name,
            description=_class_doc(type(self)),
            exposed_methods=[m for m, info in self.exposed_methods().items() if info.public],
        )
        self.metrics = ServiceMetrics()
        self.logger = logging.getLogger(f"service.{name or type(self).__name__}")
        self._running_since: float | None = None
        self._proxy_callback: Callable[[], Any] | None = None

    # -- identity --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The service's name (the same as ``service_name``)."""
        return self.service_name

    @name.setter
    def name(self, value: str) -> None:
        self.service_name = value

    @property
    def state(self) -> str:
        """``status`` as text: ``"not_initialized"``, ``"initializing"``, ``"running"``..."""
        return self.status.value

    def bind(
        self,
        *,
        name: str,
        config: Mapping[str, Any] | None = None,
        proxy: ServiceProxy | None = None,
        version: str | None = None,
        description: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        """Give the instance its identity before :meth:`start`; called by the runner.

        The directory's name wins over ``SERVICE_NAME`` and ``__init__``'s; the
        manifest's version and description fill ``info`` where the service did not.
        """
        if not hasattr(self, "info"):  # a Run whose __init__ did not call BaseService.__init__
            self.proxy = getattr(self, "proxy", None)
            self._setup(name)
        default_logger = self.logger.name == f"service.{self.service_name or type(self).__name__}"
        self.service_name = name
        self.info.name = name
        if default_logger:
            self.logger = logging.getLogger(f"service.{name}")
        self.config = dict(config or {})
        self.data_dir = data_dir
        if version and self.info.version == ServiceInfo.version:
            self.info.version = version
        if description and not self.info.description:
            self.info.description = description
        if proxy is not None and self.proxy is not proxy:
            if self.proxy is None:
                self.set_proxy(proxy)
            else:
                self.proxy = proxy

    def set_proxy(self, proxy_client: ServiceProxy | None) -> bool:
        """Set ``proxy``; the first time it becomes set, the :meth:`on_proxy_set` callback runs."""
        first = self.proxy is None and proxy_client is not None
        self.proxy = proxy_client
        if first and self._proxy_callback is not None:
            run_soon(self._proxy_callback, what=f"{self.service_name}: the on_proxy_set callback")
        return proxy_client is not None

    def on_proxy_set(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` (a function or an ``async def``) once ``proxy`` is set."""
        self._proxy_callback = callback

    @classmethod
    def exposed_methods(cls) -> dict[str, MethodInfo]:
        """Every method marked with :func:`service_method`, by name."""
        found = _EXPOSED.get(cls)
        if found is None:
            found = _EXPOSED[cls] = {}
            for klass in reversed(cls.__mro__):
                for attr, value in vars(klass).items():
                    info = getattr(value, _MARK, None)
                    if isinstance(info, MethodInfo):
                        found[attr] = info
                    elif attr in found:
                        del found[attr]  # overridden without the decorator: no longer exposed
        return dict(found)

    def describe(self) -> dict[str, Any]:
        """Name, state, configuration and exposed methods, JSON-able."""
        return {
            "name": self.name,
            "state": self.state,
            "config": self.config,
            "methods": {name: info.to_dict() for name, info in self.exposed_methods().items()},
        }

    # -- life --------------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Prepare the service; called once by :meth:`start`, before any call."""

    async def cleanup(self) -> None:
        """Release what :meth:`initialize` took; called once by :meth:`stop`."""

    async def start(self) -> None:
        """Await :meth:`initialize`, moving ``status`` to running (or error, and raise)."""
        self.status = ServiceStatus.INITIALIZING
        self.metrics.gauge("service_pid", os.getpid())
        try:
            await self.initialize()
        except BaseException:
            self.status = ServiceStatus.ERROR
            self.metrics.increment("service_start_errors")
            raise
        self.status = ServiceStatus.RUNNING
        self._running_since = time.monotonic()
        self.metrics.gauge("service_uptime_start", time.time())

    async def stop(self) -> None:
        """Await :meth:`cleanup`, moving ``status`` to stopped (or error, and raise)."""
        self.status = ServiceStatus.STOPPING
        try:
            await self.cleanup()
        except BaseException:
            self.status = ServiceStatus.ERROR
            raise
        finally:
            self._running_since = None
        self.status = ServiceStatus.STOPPED

    def uptime(self) -> float:
        """Seconds since the service started running; 0 unless it runs."""
        since: float | None = getattr(self, "_running_since", None)
        if since is None or self.status is not ServiceStatus.RUNNING:
            return 0.0
        return time.monotonic() - since

    def get_health_report(self) -> dict[str, Any]:
        """The process's vital signs: status, uptime, pid, memory, threads, start errors, metric counts."""
        return {
            "service_name": self.service_name,
            "status": self.status.value,
            "uptime_seconds": self.uptime(),
            "pid": os.getpid(),
            "memory_mb": _resident_mib(),
            "cpu_percent": self.metrics.gauges.get("cpu_usage_percent", 0),
            "thread_count": threading.active_count(),
            "error_count": self.metrics.counters.get("service_start_errors", 0),
            "timestamp": time.time(),
            "metrics_summary": {
                "counters": len(self.metrics.counters),
                "gauges": len(self.metrics.gauges),
                "timers": len(self.metrics.timers),
            },
        }

    # -- built-in methods ----------------------------------------------------------------------

    @service_method(description="Get detailed service information", public=True)
    async def get_service_info(self) -> dict[str, Any]:
        """What the service says of itself, its health report and its metrics."""
        snapshot = self.metrics.snapshot()
        report = self.get_health_report()
        return {
            "name": self.service_name,
            "status": self.status.value,
            "version": self.info.version,
            "description": self.info.description,
            "exposed_methods": list(self.info.exposed_methods),
            "metadata": dict(self.info.metadata),
            "uptime": self.uptime(),
            "health_report": report,
            "metrics_summary": report["metrics_summary"],
            "counters": snapshot["counters"],
            "gauges": snapshot["gauges"],
            "timers": snapshot["timers"],
        }

    @service_method(description="Health check ping", public=True, requires_auth=False)
    async def ping(self) -> dict[str, Any]:
        """``{"status": "alive", "service", "uptime", "timestamp", "heartbeat": true}``."""
        now = time.time()
        self.metrics.increment("ping_requests")
        self.metrics.gauge("service_heartbeat", now)
        return {
            "status": "alive",
            "service": self.service_name,
            "uptime": self.uptime(),
            "timestamp": now,
            "heartbeat": True,
        }

    async def call_method(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call an exposed method of this instance by name with keyword ``params``.

        Raises :class:`LookupError` for a method that is not exposed and
        :class:`TypeError` for parameters that do not fit its signature.
        """
        info = self.exposed_methods().get(method)
        if info is None:
            raise LookupError(f"service {self.name!r} has no exposed method {method!r}")
        bound = getattr(self, method)
        kwargs = dict(params or {})
        try:
            function: Callable[..., Any] | None = getattr(type(self), method, None)
            if getattr(bound, "__func__", None) is function and function is not None:  # not an instance's own
                _class_signature(type(self), method, function).bind(self, **kwargs)
            else:
                inspect.signature(bound).bind(**kwargs)
        except TypeError as exc:
            raise TypeError(f"bad parameters for {self.name}/{method}: {exc}") from None
        return await bound(**kwargs)


def _class_doc(cls: type) -> str:
    """The docstring of the service's own classes (not this module's)."""
    for klass in cls.__mro__:
        if klass is BaseService:
            break
        doc = klass.__dict__.get("__doc__")
        if isinstance(doc, str) and doc.strip():
            return inspect.cleandoc(doc)
    return ""


def _resident_mib() -> float:
    """This process's resident memory in MiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return float(pages * os.sysconf("SC_PAGE_SIZE")) / (1024 * 1024)


def _class_signature(cls: type, method: str, function: Callable[..., Any]) -> inspect.Signature:
    """The signature of ``cls.method`` (``self`` included), computed once per class."""
    signatures = _SIGNATURES.setdefault(cls, {})
    signature = signatures.get(method)
    if signature is None:
        signature = signatures[method] = inspect.signature(function)
    return signature
