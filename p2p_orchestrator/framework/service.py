"""``BaseService`` and the ``service_method`` decorator.

A service is a class named ``Run`` in the service's ``main.py``::

    from service_framework import BaseService, service_method

    class Run(BaseService):
        SERVICE_NAME = "hello"

        async def initialize(self):
            self.greeting = self.config.get("greeting", "Hello")

        @service_method(description="Greets someone", public=True)
        async def greet(self, name: str = "world"):
            return {"message": f"{self.greeting}, {name}!"}

The orchestrator creates the instance with no arguments, then binds its name,
merged configuration and proxy before awaiting ``initialize()``.  Only methods
marked with :func:`service_method` can be called from outside the instance, and
only ``public=True`` ones from other nodes.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

__all__ = ["BaseService", "MethodInfo", "ServiceProxy", "service_method"]

_MARK = "__service_method__"

_EXPOSED: weakref.WeakKeyDictionary[type, dict[str, MethodInfo]] = weakref.WeakKeyDictionary()
"""Each service class's exposed methods, found once (walking the MRO on every call costs)."""
_SIGNATURES: weakref.WeakKeyDictionary[type, dict[str, inspect.Signature]] = weakref.WeakKeyDictionary()
"""The signatures of each class's exposed functions (``self`` included), computed once."""

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class MethodInfo:
    """What the framework knows of one exposed method."""

    name: str
    description: str
    public: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form reported by ``get_service_info``."""
        return {"name": self.name, "description": self.description, "public": self.public}


def service_method(description: str = "", public: bool = True) -> Callable[[F], F]:
    """Mark an ``async def`` method of a service as callable through the orchestrator.

    ``public=False`` keeps the method callable from the service's own node only
    (other local services, the node's operator), never from other peers.
    """
    if not isinstance(description, str):
        raise TypeError("service_method(description=...) must be a string; write @service_method(...)")

    def mark(func: F) -> F:
        checked: Any = func  # keep `func` typed as F: iscoroutinefunction would narrow it
        if not inspect.iscoroutinefunction(checked):
            raise TypeError(f"@service_method needs an 'async def' method; {func.__qualname__} is not")
        setattr(func, _MARK, MethodInfo(func.__name__, description, bool(public)))
        return func

    return mark


class ServiceProxy(Protocol):
    """How a service calls other services and other nodes through its orchestrator.

    ``await self.proxy.call("other_service/method", {...})`` calls a service on the
    same node; ``await self.proxy.call("orchestrator/list_services", {}, peer=PEER_ID)``
    calls another node by its peer ID.
    """

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, peer: str | None = None
    ) -> Any:
        """Call ``method`` (``"<service>/<method>"`` or ``"orchestrator/<method>"``)."""
        ...


class BaseService:
    """Base class of every service's ``Run`` class.

    Attributes available from ``initialize()`` on:

    * ``name``: the service's name (its archive's top directory).
    * ``config``: the merged configuration (``manifest.configuration``, overlaid by
      ``config/default.json``, overlaid by the node operator's settings).
    * ``proxy``: a :class:`ServiceProxy` for calls to other services and nodes, or
      ``None`` when the instance runs outside an orchestrator (in a unit test).
    * ``state``: ``"created"``, ``"initializing"``, ``"running"``, ``"stopping"``
      or ``"stopped"``.
    * ``logger``: a :mod:`logging` logger named after the service.
    """

    SERVICE_NAME: ClassVar[str] = ""

    name: str = ""
    config: dict[str, Any]
    proxy: ServiceProxy | None = None
    state: str = "created"

    def __init__(self) -> None:
        self.name = self.SERVICE_NAME
        self.config = {}
        self.proxy = None
        self.state = "created"

    def bind(
        self,
        *,
        name: str,
        config: Mapping[str, Any] | None = None,
        proxy: ServiceProxy | None = None,
    ) -> None:
        """Give the instance its identity before ``initialize()``; called by the runner."""
        self.name = name
        self.config = dict(config or {})
        self.proxy = proxy

    @property
    def logger(self) -> logging.Logger:
        """A logger named ``service.<name>``."""
        return logging.getLogger(f"service.{self.name or type(self).__name__}")

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

    async def initialize(self) -> None:
        """Prepare the service; called once after :meth:`bind`, before any call."""

    async def cleanup(self) -> None:
        """Release what :meth:`initialize` took; called once when the service stops."""

    async def call_method(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call an exposed method by name with keyword ``params``.

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


def _class_signature(cls: type, method: str, function: Callable[..., Any]) -> inspect.Signature:
    """The signature of ``cls.method`` (``self`` included), computed once per class."""
    signatures = _SIGNATURES.setdefault(cls, {})
    signature = signatures.get(method)
    if signature is None:
        signature = signatures[method] = inspect.signature(function)
    return signature
