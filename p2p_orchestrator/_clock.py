"""Timestamps as the API reports them."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    """The current time as ISO 8601 with milliseconds and an explicit UTC offset."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
