"""The shapes of the names every layer checks, written once: a leaf module that imports nothing.

Each is compiled for ``fullmatch``.
"""

from __future__ import annotations

import re

__all__ = ["HEX_SHA256", "METHOD_PATH", "PEER_ID", "PEER_NAME", "SERVICE_NAME"]

_SERVICE = r"[a-z][a-z0-9_]{0,63}"

SERVICE_NAME = re.compile(_SERVICE)
"""A service's name (``orchestrator`` too): lowercase, digits, underscores, at most 64."""
METHOD_PATH = re.compile(rf"({_SERVICE})/([A-Za-z_][A-Za-z0-9_]{{0,127}})")
"""``"<service>/<method>"``; its groups are the service and the method."""
PEER_ID = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,128}")
"""A libp2p peer ID as printed: base58btc (checked loosely; libp2p parses it fully)."""
PEER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
"""A name of ``[peers]`` for a peer ID."""
HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
"""A sha256 in lowercase hex: an archive's identity."""
