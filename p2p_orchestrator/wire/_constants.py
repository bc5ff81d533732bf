"""Protocol identifiers and the default limits every side of the wire applies."""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1
"""Version carried by :class:`~p2p_orchestrator.wire.Hello`; bumped with the protocol id's major."""

RPC_PROTOCOL_ID: Final = "/p2p-orchestrator/rpc/1.0.0"
"""The libp2p protocol id negotiated (multistream-select) for node-to-node RPC streams."""

FRAME_HEADER_BYTES: Final = 4
"""Size of the big-endian unsigned length prefix in front of every frame."""

MAX_FRAME_LIMIT: Final = 2**32 - 1
"""Largest length a 4-byte header can express; no configured cap may exceed it."""

DEFAULT_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
"""Default cap on one frame's payload (4 MiB). Larger data must be chunked by the sender."""

DEFAULT_MAX_DEPTH: Final = 16
"""Default cap on container nesting in one payload; the top-level map is depth 1."""

DEFAULT_MAX_ITEMS: Final = 100_000
"""Default cap on CBOR data items (every key, value, element and container) in one payload."""

DEFAULT_MAX_IN_FLIGHT: Final = 64
"""Default cap on unanswered requests a connection accepts from its peer before answering ``busy``."""

MAX_REQUEST_ID: Final = 2**53
"""Largest request id (ids are 1..2**53, so they survive a trip through a JSON/JavaScript double)."""
