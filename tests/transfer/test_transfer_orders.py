"""Every message in every state, for both state machines: accepted, or refused with its code.

Plus what an adapter does around the state machines: deadlines on stalls, and sources that end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from p2p_orchestrator.errors import PermissionDenied, ProtocolError, ServiceDistributionError
from p2p_orchestrator.transfer import (
    Abort,
    Awaiting,
    Bitfield,
    CancelChunks,
    Chunk,
    Done,
    Fetch,
    Have,
    Offer,
    ReceiverState,
    Result,
    SourceEnded,
    TransferMessage,
    TransferReceiver,
    TransferSender,
    Want,
)
from tests.transfer.support import CHUNK, Link, archive, reader, sends, store

OK = "ok"
UNEXPECTED = "unexpected_message"
MESSAGES = ["offer", "have", "chunk", "done", "abort", "want", "cancel", "result", "fetch"]


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.path, self.data, self.manifest = archive(tmp_path, 3 * CHUNK)

    def message(self, name: str, *, have: Bitfield | None = None) -> TransferMessage:
        return {
            "offer": Offer(self.manifest),
            "have": Have((have or Bitfield.full(3)).to_bytes()),
            "chunk": Chunk(0, self.data[:CHUNK]),
            "done": Done(),
            "abort": Abort(PermissionDenied("no")),
            "want": Want((0,)),
            "cancel": CancelChunks((0,)),
            "result": Result.success({}),
            "fetch": Fetch(service="svc"),
        }[name]

    def receiver(self, state: str) -> TransferReceiver:
        partials = store(self.tmp_path / state)
        if state == "complete":
            cache = self.tmp_path / "cache"
            cache.mkdir(exist_ok=True)
            (cache / f"{self.manifest.archive_hash}.tar.gz").write_bytes(self.data)
            partials = store(self.tmp_path / state, archive_cache=cache)
        receiver = TransferReceiver(partials.open(self.manifest), window=1)
        if state != "new":
            receiver.receive("s", Offer(self.manifest))
        if state in ("serving", "complete", "closed"):
            receiver.receive("s", self.message("have"))
        if state == "closed":
            receiver.conclude(ServiceDistributionError("gave up", code="transfer_failed"))
        return receiver


RECEIVER_TABLE: dict[str, dict[str, str]] = {  # anything not listed: unexpected_message
    "new": {"offer": OK},
    "offered": {"have": OK, "chunk": "unexpected_chunk", "done": OK, "abort": OK},
    "serving": {"have": OK, "chunk": OK, "done": "premature_done", "abort": OK},
    "complete": {"have": OK, "chunk": "unexpected_chunk", "done": OK, "abort": OK},
    "closed": dict.fromkeys(MESSAGES, OK),  # crossed the result on the wire: ignored
}


@pytest.mark.parametrize("state", list(RECEIVER_TABLE))
@pytest.mark.parametrize("name", MESSAGES)
def test_receiver_message_in_every_state(tmp_path: Path, state: str, name: str) -> None:
    setup = Setup(tmp_path)
    receiver = setup.receiver(state)
    expected = RECEIVER_TABLE[state].get(name, UNEXPECTED)
    message = setup.message(name)
    if expected == OK:
        receiver.receive("s", message)
        return
    with pytest.raises((ProtocolError, ServiceDistributionError)) as info:
        receiver.receive("s", message)
    assert info.value.code == expected


SENDER_TABLE: dict[str, dict[str, str]] = {  # anything not listed: unexpected_message
    "idle": {},
    "offered": {"have": OK, "result": OK},
    "serving": {"have": OK, "want": OK, "cancel": OK, "result": OK},
    "done": {"have": OK, "cancel": OK, "result": OK},
    "closed": {},
}


@pytest.mark.parametrize("state", list(SENDER_TABLE))
@pytest.mark.parametrize("name", MESSAGES)
def test_sender_message_in_every_state(tmp_path: Path, state: str, name: str) -> None:
    setup = Setup(tmp_path)
    sender = TransferSender(setup.manifest, reader(setup.path, setup.manifest))
    if state != "idle":
        sender.start()
    if state in ("serving", "done", "closed"):
        sender.receive(Have(Bitfield(3).to_bytes()))
    if state == "done":
        sender.finish()
    if state == "closed":
        sender.receive(Result.success({}))
    message = setup.message(name, have=Bitfield(3))
    expected = SENDER_TABLE[state].get(name, UNEXPECTED)
    if expected == OK:
        assert sender.receive(message) == []
        return
    with pytest.raises((ProtocolError, ServiceDistributionError)) as info:
        sender.receive(message)
    assert info.value.code == expected


# -- what adapters do around them -------------------------------------------------------------


def test_a_stalled_source_is_cut_by_the_adapters_deadline_and_the_transfer_resumes(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    partials = store(tmp_path)
    receiver = TransferReceiver(partials.open(setup.manifest), window=2)
    receiver.receive("staller", Offer(setup.manifest))
    receiver.receive("staller", Have(Bitfield.full(3).to_bytes()))
    receiver.receive("staller", Chunk(0, setup.data[:CHUNK]))
    # the source goes silent: the receiver says what is overdue, the adapter's deadline expires
    assert receiver.waiting_for("staller") is Awaiting.CHUNKS
    assert receiver.in_flight("staller") == {1, 2}
    assert receiver.source_closed("staller") == []
    assert receiver.stalled and receiver.sources == frozenset()
    error = ServiceDistributionError("the sender stopped sending", code="transfer_failed")
    assert receiver.conclude(error) == []
    receiver.partial.close()
    # later (a retry, or a restarted node): only the two missing chunks travel
    sender = TransferSender(setup.manifest, reader(setup.path, setup.manifest))
    link = Link(sender, TransferReceiver(store(tmp_path).open(setup.manifest))).run()
    assert link.chunks == [1, 2] and link.chunk_bytes == 2 * CHUNK
    assert link.receiver.state is ReceiverState.CLOSED


def test_a_source_that_leaves_early_without_owing_leaves_the_transfer_stalled(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    receiver = TransferReceiver(store(tmp_path).open(setup.manifest), window=1)
    receiver.receive("s", Offer(setup.manifest))
    assert sends(receiver.receive("s", Have(Bitfield.full(3).to_bytes()))) == [Want((0,))]
    receiver.receive("s", Chunk(0, setup.data[:CHUNK]))
    receiver.receive("s", Chunk(1, setup.data[CHUNK : 2 * CHUNK]))
    with pytest.raises(ServiceDistributionError) as info:  # it owes chunk 2: a lie
        receiver.receive("s", Done())
    assert info.value.code == "premature_done"
    receiver.receive("t", Offer(setup.manifest))
    receiver.receive("t", Have(Bitfield.from_indices(3, [0, 1]).to_bytes()))  # cannot help
    assert receiver.stalled
    assert receiver.receive("t", Done()) == [SourceEnded("t", None)]  # owes nothing: fine
    assert receiver.stalled and not receiver.complete
