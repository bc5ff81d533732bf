"""What a service process may reach: the Landlock policy applied by the runner before a service is imported.

A service is someone else's code running as the node's user.  Before its
``main.py`` is imported, the runner confines its own process (and so every
child the service starts) to:

* read and execute: its version directory, the Python installation and the
  packages the runner needs (the node's or the service's environment), this
  package, ``/usr`` (the dynamic loader, locales, ``/bin/sh``), and the few
  files of ``/etc`` that name resolution, certificates, time zones and user
  lookups read; its own ``/proc/<pid>``;
* read and write: its data directory (``home/data/<name>/``, its working
  directory and ``HOME``), which holds its temporary directory (``TMPDIR``),
  and ``/dev/null``.

Nothing else of the node's home is reachable: not ``identity.key``, not
``state.db`` or ``roles.toml``, not another service's files or data, not the
node's ``/proc/<pid>/environ``.  On Landlock ABI 6+ it can neither signal
processes outside its domain (the node) nor reach their abstract Unix sockets.
With ``network=False`` (ABI 4+) it may neither bind nor connect TCP sockets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from p2p_orchestrator.runtime._landlock import SandboxReport, restrict

__all__ = ["SYSTEM_READABLE", "confine", "temporary_directory"]

SYSTEM_READABLE = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ld.so.cache",
    "/etc/mime.types",
    "/dev/urandom",
)
"""What of the system every service may read: the loader and libraries, and what the C library reads."""


def temporary_directory(data_directory: Path) -> Path:
    """The service's private temporary directory (``TMPDIR``), inside its data directory."""
    return data_directory / "tmp"


def confine(
    service_dir: Path,
    package_root: Path,
    data_directory: Path,
    *,
    readable: Iterable[str] = (),
    network: bool = True,
) -> SandboxReport:
    """Confine this process as the module docstring says; ``readable`` adds read-only paths."""
    python = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    read_only = [
        str(service_dir),
        str(package_root),
        *sorted(python),
        *SYSTEM_READABLE,
        os.path.realpath("/proc/self"),  # its own /proc/<pid> only, not the node's
        *readable,
    ]
    read_write = [str(data_directory), "/dev/null"]
    return restrict(read_only, read_write, network=network)
