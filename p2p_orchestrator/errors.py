"""Typed errors with stable machine-readable codes.

Every error the orchestrator raises on purpose is an :class:`OrchestratorError`.
Each carries a ``code`` (a short, stable, snake_case string that scripts and
remote callers can match on) and a human message that says what went wrong and,
where it can, what to do about it.  Errors cross process and network boundaries
as ``{"code", "type", "message"}`` and are rebuilt into the same class on the
other side by :func:`error_from_wire`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "Busy",
    "ConfigError",
    "ControlError",
    "IdentityError",
    "OrchestratorError",
    "PermissionDenied",
    "ProtocolError",
    "ReleaseError",
    "RemoteError",
    "ServiceCallError",
    "ServiceDistributionError",
    "ServiceInstallationError",
    "ServiceManagementError",
    "error_from_wire",
    "error_to_wire",
]


class OrchestratorError(Exception):
    """Base class of every deliberate orchestrator error.

    ``code`` is stable across releases; ``message`` is for people.
    """

    default_code: ClassVar[str] = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ServiceInstallationError(OrchestratorError):
    """An archive or manifest was refused, or installing it failed."""

    default_code = "installation_failed"


class ReleaseError(ServiceInstallationError):
    """A release statement, publisher key or trust rule refused a release (see ``p2p_orchestrator.release``).

    A subclass of :class:`ServiceInstallationError`: every install path reports it as a refused install.
    """

    default_code = "bad_release"


class ServiceManagementError(OrchestratorError):
    """A life-cycle operation (start, stop, uninstall, rollback...) failed."""

    default_code = "management_failed"


class ServiceDistributionError(OrchestratorError):
    """Moving an archive to or from another node failed."""

    default_code = "distribution_failed"


class ServiceCallError(OrchestratorError):
    """A call to a service method failed (unknown method, bad params, or the method raised)."""

    default_code = "call_failed"


class PermissionDenied(OrchestratorError):
    """The caller's role does not allow this operation; nothing was changed."""

    default_code = "permission_denied"


class ProtocolError(OrchestratorError):
    """A peer or child process sent bytes that break the wire protocol."""

    default_code = "protocol_error"


class Busy(OrchestratorError):
    """A concurrency limit is reached; retry later."""

    default_code = "busy"


class RemoteError(OrchestratorError):
    """An error of a type this side does not know, raised on the other side."""

    default_code = "remote_error"


class ConfigError(OrchestratorError):
    """The configuration file is unreadable or holds an unknown or ill-typed key."""

    default_code = "bad_config"


class IdentityError(OrchestratorError):
    """The identity key file is unsafe (group/world accessible), unreadable or corrupt."""

    default_code = "bad_identity"


class ControlError(OrchestratorError):
    """The control socket cannot be created, reached or used."""

    default_code = "control_error"


_WIRE_TYPES: dict[str, type[OrchestratorError]] = {
    cls.__name__: cls
    for cls in (
        OrchestratorError,
        ServiceInstallationError,
        ReleaseError,
        ServiceManagementError,
        ServiceDistributionError,
        ServiceCallError,
        PermissionDenied,
        ProtocolError,
        Busy,
        RemoteError,
        ConfigError,
        IdentityError,
        ControlError,
    )
}


def error_to_wire(exc: BaseException) -> dict[str, str]:
    """Describe an exception as ``{"code", "type", "message"}`` for the wire.

    ``type`` is the nearest class the other side rebuilds (a subclass of its own crosses as it).
    """
    if isinstance(exc, OrchestratorError):
        wire_type = next(cls for cls in type(exc).__mro__ if _WIRE_TYPES.get(cls.__name__) is cls)
        return {"code": exc.code, "type": wire_type.__name__, "message": exc.message}
    return {"code": "internal_error", "type": "RemoteError", "message": f"{type(exc).__name__}: {exc}"}


def error_from_wire(data: Any) -> OrchestratorError:
    """Rebuild the exception a peer described with :func:`error_to_wire`.

    Unknown types become :class:`RemoteError`; malformed descriptions become
    :class:`ProtocolError` rather than raising something unexpected.
    """
    if not isinstance(data, dict):
        return ProtocolError("error description is not a map", code="bad_error")
    code, type_name, message = data.get("code"), data.get("type"), data.get("message")
    if not (isinstance(code, str) and isinstance(type_name, str) and isinstance(message, str)):
        return ProtocolError("error description lacks code, type or message", code="bad_error")
    cls = _WIRE_TYPES.get(type_name, RemoteError)
    return cls(message, code=code)
