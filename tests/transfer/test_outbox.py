"""``Outbox``: queueing for a stream never raises, whatever became of the stream's writer."""

from __future__ import annotations

from typing import Any

from p2p_orchestrator.node.distribution._transfer_stream import Outbox
from p2p_orchestrator.node.host._stream import StreamBroken


class BrokenStream:
    """A transfer stream whose peer is gone: every write fails."""

    def __init__(self) -> None:
        self.closed = False

    async def send(self, message: Any) -> None:
        raise StreamBroken("the peer reset the stream")

    async def close(self) -> None:
        self.closed = True


async def test_putting_after_the_writer_ended_on_a_broken_stream_says_no() -> None:
    """Regression: ``put`` raised ``BrokenResourceError`` once the writer had ended on a broken
    stream, and the receiving session that queued a ``want`` for that source failed whole."""
    stream = BrokenStream()
    outbox = Outbox(stream, size=4)  # type: ignore[arg-type]
    assert outbox.put("first") is True
    broken = await outbox.run()  # the write fails: the writer ends
    assert isinstance(broken, StreamBroken) and stream.closed
    assert outbox.put("second") is False  # refused, not raised
    outbox.close()
    assert outbox.put("third") is False


def test_a_full_outbox_says_no_at_once() -> None:
    outbox = Outbox(BrokenStream(), size=1)  # type: ignore[arg-type]
    assert outbox.put("one") is True
    assert outbox.put("two") is False  # put never waits: a synchronous call
