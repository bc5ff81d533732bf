"""``exponential_delay``: the one formula behind every wait between tries (restarts, redials, retries)."""

from __future__ import annotations

import random

__all__ = ["exponential_delay"]


def exponential_delay(
    first: float,
    factor: float,
    attempt: int,
    cap: float,
    *,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """``first * factor**attempt`` seconds (``attempt`` 0 for the first wait), at most ``cap``.

    ``jitter`` spreads it by up to that fraction either way (still at most ``cap``), so that
    peers or services failing together do not retry together.
    """
    base = min(cap, first * factor ** min(attempt, 64))
    if not jitter:
        return base
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0.0, min(cap, base * (1.0 + spread)))
