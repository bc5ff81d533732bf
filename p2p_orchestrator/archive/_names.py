"""Rules for service names and archive member paths."""

from __future__ import annotations

import re
import unicodedata

from p2p_orchestrator._patterns import SERVICE_NAME
from p2p_orchestrator.archive._limits import ArchiveLimits
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["SERVICE_NAME_RE", "check_forbidden", "check_service_name", "collision_key", "split_member_path"]

SERVICE_NAME_RE = r"^[a-z][a-z0-9_]{0,63}$"
# fullmatch, because "$" also matches before a trailing newline.

# Compiled or native code would be imported instead of (or besides) the sources.
_FORBIDDEN_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".pth")
_VERSIONED_SO = re.compile(r".*\.so(\.[0-9]+)+", re.ASCII)
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


RESERVED_NAMES = frozenset({"orchestrator", "node", "runner", "service"})
"""Names a service may not take: the RPC target of the node itself, the control socket's ``node/*``
methods, and the two namespaces of the channel between the node and a service's process."""


def check_service_name(name: object) -> str:
    """Return ``name`` if it is a valid service name, else raise.

    A service name is 1 to 64 characters of lowercase ASCII letters, digits and
    ``_``, starting with a letter (:data:`SERVICE_NAME_RE`).  It is used as a
    directory name, a Python identifier and the first part of RPC method paths.
    """
    if name in RESERVED_NAMES:
        raise ServiceInstallationError(
            f"the service name {name!r} is reserved (the node's own methods use it)",
            code="bad_service_name",
        )
    if not isinstance(name, str) or SERVICE_NAME.fullmatch(name) is None:
        raise ServiceInstallationError(
            f"invalid service name {name!r}: use 1-64 lowercase letters, digits or '_', "
            "starting with a letter",
            code="bad_service_name",
        )
    return name


def _refuse(path: str, rule: str, code: str = "bad_member_name") -> ServiceInstallationError:
    return ServiceInstallationError(f"archive member {path!r}: {rule}", code=code)


def split_member_path(path: str, *, is_dir: bool, limits: ArchiveLimits) -> tuple[str, ...] | None:
    """Split a member path into its components, refusing anything unsafe.

    One leading ``./`` is accepted and dropped; a bare ``.`` or ``./`` directory
    (the archive root, as written by ``tar -C dir .``) yields ``None``.  A single
    trailing ``/`` is accepted on directories only.
    """
    if path in (".", "./") and is_dir:
        return None
    if path.startswith("/"):
        raise _refuse(path, "absolute path")
    text = path.removeprefix("./")
    if is_dir and text.endswith("/"):
        text = text[:-1]
    for char in text:
        if char == "\\":
            raise _refuse(path, "backslash in path")
        if unicodedata.category(char) in _BAD_CATEGORIES:
            raise _refuse(path, f"control or format character U+{ord(char):04X} in path")
    parts = tuple(text.split("/"))
    for part in parts:
        if part == "":
            raise _refuse(path, "empty path component")
        if part == ".":
            raise _refuse(path, "'.' path component")
        if part == "..":
            raise _refuse(path, "'..' path component")
        if ":" in part:
            raise _refuse(path, "':' in path (drive letter or stream name)")
    if len(text.encode("utf-8")) > limits.max_path_length:
        raise _refuse(path, f"path longer than {limits.max_path_length} bytes", "path_too_long")
    if len(parts) - 1 > limits.max_path_depth:
        raise _refuse(path, f"path deeper than {limits.max_path_depth} levels", "path_too_deep")
    return parts


def check_forbidden(path: str, parts: tuple[str, ...]) -> None:
    """Refuse compiled bytecode, native libraries and ``.pth`` files anywhere in the tree."""
    for part in parts:
        folded = part.casefold()
        if folded == "__pycache__":
            raise _refuse(path, "__pycache__ directories are not allowed", "forbidden_file")
        if folded.endswith(_FORBIDDEN_SUFFIXES) or _VERSIONED_SO.fullmatch(folded):
            raise _refuse(path, "compiled or native code is not allowed (ship sources)", "forbidden_file")


def collision_key(parts: tuple[str, ...]) -> str:
    """The key under which two paths would name the same file on a case-insensitive system."""
    return unicodedata.normalize("NFC", "/".join(parts)).casefold()
