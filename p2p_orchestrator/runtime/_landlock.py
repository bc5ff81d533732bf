"""A small ctypes binding to Linux Landlock: restrict what the current process may reach.

Landlock (Linux 5.13+) lets an unprivileged process give up access to the
filesystem beneath paths it does not list, TCP bind and connect (ABI 4+), and
abstract Unix sockets and signals towards processes outside its domain (ABI 6+).
The restriction is irreversible and inherited by every child.

Rules to know (from the kernel's ``landlock.rst``):

* :func:`restrict` restricts the *calling thread* and its future children only:
  call it before any other thread starts (it refuses otherwise).
* File descriptors opened before stay usable (the channel to the node, stdio).
* It is checked at ``open`` time by path: a hard link to a secret that someone
  else plants in an allowed directory stays readable; a symlink does not help.
* ABI 7 has no right for *connecting* to a pathname Unix socket: the node
  checks who connects to its control socket itself (``SO_PEERCRED``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SandboxReport", "abi_version", "restrict"]

# The generic syscall numbers, the same on every architecture Linux added Landlock for.
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_MACHINES = frozenset({"x86_64", "aarch64", "arm64", "riscv64"})
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_V1 = (1 << 13) - 1  # execute ... make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
"""The rights a rule on a file (not a directory) may grant."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),  # ABI 4
        ("scoped", ctypes.c_uint64),  # ABI 6
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: int | ctypes.c_void_p | None) -> int:
    converted = [a if a is None or isinstance(a, ctypes.c_void_p) else ctypes.c_long(a) for a in args]
    result = int(_libc.syscall(ctypes.c_long(number), *converted))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"landlock syscall {number}: {os.strerror(code)}")
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is disabled at boot)."""
    if platform.machine() not in _MACHINES:
        return 0
    try:
        return _syscall(_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
            return 0
        raise


@dataclass(frozen=True)
class SandboxReport:
    """What :func:`restrict` did."""

    abi: int
    applied: bool
    network: bool = True
    """Whether TCP bind and connect stay allowed."""
    skipped: tuple[str, ...] = ()
    """Listed paths that do not exist."""


def _fs_rights(abi: int) -> int:
    rights = _FS_V1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def _add_rule(ruleset: int, path: str, access: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FILE_ONLY
        attr = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
        _syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.c_void_p(ctypes.addressof(attr)), 0)
    finally:
        os.close(fd)


def restrict(read_only: Iterable[str], read_write: Iterable[str], *, network: bool = True) -> SandboxReport:
    """Irreversibly confine this process (and its future children).

    Nothing of the filesystem stays reachable but what is beneath ``read_only``
    (read and execute) and ``read_write`` (everything) paths; paths that do not
    exist are skipped.  ``network=False`` (ABI 4+) forbids every TCP bind and
    connect.  On ABI 6+ the process may neither reach abstract Unix sockets nor
    send signals outside its domain.  Without Landlock nothing is restricted and
    the report says ``applied=False``: the caller decides what to tell.
    """
    if threading.active_count() > 1:
        raise RuntimeError("Landlock restricts the calling thread only: restrict() before any thread starts")
    abi = abi_version()
    if abi == 0:
        return SandboxReport(abi=0, applied=False)
    fs = _fs_rights(abi)
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 and not network else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(handled_access_fs=fs, handled_access_net=net, scoped=scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else ctypes.sizeof(_RulesetAttr)  # what this kernel knows
    ruleset = _syscall(_CREATE_RULESET, ctypes.c_void_p(ctypes.addressof(attr)), size, 0)
    skipped = []
    try:
        wanted = [(path, _READ) for path in read_only] + [(path, fs) for path in read_write]
        for path, access in wanted:
            if not os.path.exists(path):
                skipped.append(path)
                continue
            _add_rule(ruleset, path, access)
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
        _syscall(_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    return SandboxReport(abi=abi, applied=True, network=not net, skipped=tuple(skipped))
