"""Replies a peer may ask for in bulk (log lines, events) cut to fit one frame, newest kept.

A frame carries at most 4 MiB and 100,000 CBOR data items (``docs/protocol.md``); a reply is
kept to a quarter of the first and about two thirds of the second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["ITEM_BYTES", "REPLY_BYTES", "json_weight", "newest_within"]

REPLY_BYTES = 1024 * 1024
"""The most bytes of items a bulk reply carries (a reply travels in one frame of at most 4 MiB)."""

ITEM_BYTES = 16
"""What each data item counts for against :data:`REPLY_BYTES` (so at most 65,536 of them)."""

_T = TypeVar("_T")


def json_weight(value: Any) -> int:
    """What ``value`` (JSON types) counts for: its JSON length, plus :data:`ITEM_BYTES` per item."""
    return len(json.dumps(value)) + ITEM_BYTES * _items(value)


def _items(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(1 + _items(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(_items(item) for item in value)
    return 1


def newest_within(
    items: Sequence[_T], size_of: Callable[[_T], int], budget: int = REPLY_BYTES
) -> tuple[list[_T], bool]:
    """The newest ``items`` (the last ones) whose sizes fit in ``budget``, in their order.

    Also whether older ones were left out for that.
    """
    kept: list[_T] = []
    for item in reversed(items):
        budget -= size_of(item)
        if budget < 0:
            break
        kept.append(item)
    return kept[::-1], len(kept) < len(items)
