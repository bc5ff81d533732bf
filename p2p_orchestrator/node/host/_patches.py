"""The fixes to py-libp2p a node runs with, installed once, before any host runs.

They depend on the library's internals, so they are written for one version, :data:`PATCHED_FOR`:

* :mod:`._noise_guard`: a cancelled write no longer kills its Noise connection (it hit RPC and
  transfer streams alike);
* :mod:`._frame_reads`: one wake-up per Noise frame instead of one per TCP segment;
* :mod:`._secure_reads`: Noise transport messages read ahead, and Yamux's bytes without copies;
* :mod:`._yamux_guard` (per host, by :func:`~._build.build_host`): receive windows enforced;
  its connections deliver plain DATA frames without the library's per-frame work
  (:mod:`._yamux_incoming`) and write theirs with one copy (:mod:`._yamux_writes`);
* :mod:`._inbound_gate` (per host): inbound connections admitted, and their slots given back;
* :mod:`._yamux_reads` (at each read): large reads of a Yamux stream.

:func:`install` checks the installed version first: another one is refused loudly
(:class:`~p2p_orchestrator.ConfigError` naming both) rather than run with fixes that may silently
no longer apply.  ``P2P_ORCHESTRATOR_ALLOW_LIBP2P=<version>`` lets an operator who has checked a
new version run it (the node then logs a warning).
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import PackageNotFoundError, version

from p2p_orchestrator.config import ConfigError
from p2p_orchestrator.node.host import _frame_reads, _noise_guard, _secure_reads

__all__ = ["ALLOW_ENV", "PATCHED_FOR", "install", "libp2p_version"]

log = logging.getLogger("p2p_orchestrator.node")

PATCHED_FOR = "0.8.1"
"""The py-libp2p version the fixes are written for."""

ALLOW_ENV = "P2P_ORCHESTRATOR_ALLOW_LIBP2P"


def libp2p_version() -> str:
    """The installed py-libp2p's version (``"unknown"`` if its metadata is missing)."""
    try:
        return version("libp2p")
    except PackageNotFoundError:
        return "unknown"


def install() -> None:
    """Check the library's version, then install the process-wide fixes (idempotent)."""
    found = libp2p_version()
    if found != PATCHED_FOR:
        if os.environ.get(ALLOW_ENV) != found:
            raise ConfigError(
                f"py-libp2p {found} is installed, but this node's fixes to it are written for {PATCHED_FOR}: "
                f"install libp2p=={PATCHED_FOR}, or set {ALLOW_ENV}={found} after checking them against it"
            )
        log.warning("Running on py-libp2p %s; the node's fixes were written for %s", found, PATCHED_FOR)
    _noise_guard.install()
    _frame_reads.install()
    _secure_reads.install()
