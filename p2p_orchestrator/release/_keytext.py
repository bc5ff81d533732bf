"""A publisher's public key as one line of text: ``ed25519:<base64 of the 32 raw bytes>``."""

from __future__ import annotations

import base64
import binascii

from p2p_orchestrator.errors import ReleaseError

__all__ = ["KEY_BYTES", "KEY_PREFIX", "parse_public_key", "public_key_text"]

KEY_PREFIX = "ed25519:"
KEY_BYTES = 32


def public_key_text(raw: bytes) -> str:
    """The text form of a 32-byte Ed25519 public key: ``ed25519:`` and standard, padded base64."""
    if type(raw) is not bytes or len(raw) != KEY_BYTES:
        raise ReleaseError(f"an Ed25519 public key is {KEY_BYTES} bytes", code="bad_public_key")
    return KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes that ``text`` (as :func:`public_key_text` writes it) names.

    Surrounding whitespace (a pasted line's newline) is ignored; anything else that is not exactly
    that form is refused with ``bad_public_key``.
    """
    if not isinstance(text, str):
        raise ReleaseError("a public key must be text such as ed25519:<base64>", code="bad_public_key")
    line = text.strip()
    shown = line if len(line) <= 60 else line[:57] + "..."
    if not line.startswith(KEY_PREFIX):
        raise ReleaseError(
            f"{shown!r} is not a publisher public key: expected ed25519:<base64>, "
            "the line `p2p-orchestrator keygen` printed",
            code="bad_public_key",
        )
    encoded = line[len(KEY_PREFIX) :]
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    # Decoding again must give the same text: one key has exactly one spelling.
    if len(raw) != KEY_BYTES or base64.b64encode(raw).decode("ascii") != encoded:
        raise ReleaseError(
            f"{shown!r} is not a publisher public key: after ed25519: must come the base64 of "
            f"{KEY_BYTES} bytes (44 characters), as `p2p-orchestrator keygen` printed it",
            code="bad_public_key",
        )
    return raw
