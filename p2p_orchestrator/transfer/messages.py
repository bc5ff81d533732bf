"""The transfer messages: frozen dataclasses that know their wire form.

Each message is a CBOR map whose ``"t"`` field names its type, carried in the RPC codec's
frames under the same strict CBOR profile.  Constructing a message checks its fields, so an
ill-formed one cannot be built locally either; :func:`message_from_wire` also refuses unknown
types and missing or extra fields.  Refusals are ``ProtocolError(code="bad_message")``, except a
manifest's own faults (``ServiceDistributionError``: ``bad_manifest``, ``transfer_too_large``).

A stream has a *sender* (it holds the archive, or part of it) and a *receiver*:

==========  ==========  =========================  ==============================================
``"t"``     from        fields                     meaning
==========  ==========  =========================  ==============================================
``fetch``   receiver    ``archive_hash``,          first message of a pull: "offer me this
                        ``service`` (one is null)  archive" (by hash) or "this service's current
                                                   archive" (by name)
``offer``   sender      ``manifest``, ``purpose``, first message of the sender: what it offers,
                        ``options``, ``peers``     why (install/fetch), and the other peers of
                                                   a swarm
``have``    both        ``bits``                   the chunks the side holds, verified (bitfield);
                                                   a sender may send updates, only ever growing
``want``    receiver    ``indices``                send me these chunks
``cancel``  receiver    ``indices``                never mind these (got them elsewhere)
``chunk``   sender      ``index``, ``data``        one chunk
``done``    sender      (none)                     I will send nothing more (owes nothing)
``abort``   sender      ``error``                  I end this transfer because of ``error``
``result``  receiver    ``ok``, ``result``,        the outcome: ``ok`` with a map (e.g. the
                        ``error``                  install result), or not ``ok`` with an error
==========  ==========  =========================  ==============================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, TypeAlias, cast

from p2p_orchestrator._patterns import HEX_SHA256, SERVICE_NAME

from ..errors import OrchestratorError, error_to_wire
from ..wire._tagged import MessageTable, Tagged, bad_message, check_error, error_field
from ._constants import (
    DEFAULT_MAX_TRANSFER_BYTES,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MAX_IN_FLIGHT,
    MAX_PEERS,
    MAX_RELEASE_BYTES,
)
from .manifest import TransferManifest

__all__ = [
    "Abort",
    "CancelChunks",
    "Chunk",
    "Done",
    "Fetch",
    "Have",
    "Offer",
    "Purpose",
    "RECEIVER_MESSAGES",
    "Result",
    "SENDER_MESSAGES",
    "TransferMessage",
    "TransferOptions",
    "Want",
    "message_from_wire",
]

Purpose: TypeAlias = Literal["install", "fetch", "update"]
"""``install``: the receiver installs the archive (push); ``fetch``: it only keeps it (pull, swarm);
``update``: the receiver installs it as an update it follows and agreed to be sent (a delivery)."""

_PURPOSES = ("install", "fetch", "update")
_PEER_ID = re.compile(r"[1-9A-HJ-NP-Za-km-z]{1,128}")  # base58btc, as libp2p prints peer ids
_MAX_BITS_BYTES = MAX_CHUNKS // 8


def _check_index(owner: str, value: object) -> None:
    if type(value) is not int or not 0 <= value < MAX_CHUNKS:
        bad_message(f"{owner} index must be an integer in 0..{MAX_CHUNKS - 1}, got {value!r:.40}")


def _check_indices(owner: str, indices: object) -> None:
    if not isinstance(indices, tuple) or not 1 <= len(indices) <= MAX_IN_FLIGHT:
        bad_message(f"{owner}.indices must list 1..{MAX_IN_FLIGHT} chunk indices")
    for index in indices:
        _check_index(owner, index)
    if len(set(indices)) != len(indices):
        bad_message(f"{owner}.indices lists a chunk twice")


class _TransferWire(Tagged):
    """A transfer message: :class:`Tagged`, and built from its received fields by :meth:`_from_fields`."""

    __slots__ = ()

    @classmethod
    def _from_fields(cls, obj: dict[str, Any], max_total_bytes: int) -> Any:
        return cls(**obj)


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """How the receiver installs an archive it is pushed (ignored for ``fetch``)."""

    force_reinstall: bool = False
    auto_start: bool = False

    def __post_init__(self) -> None:
        if type(self.force_reinstall) is not bool or type(self.auto_start) is not bool:
            bad_message("Offer.options must be booleans force_reinstall and auto_start")

    def to_wire(self) -> dict[str, Any]:
        return {"force_reinstall": self.force_reinstall, "auto_start": self.auto_start}

    @classmethod
    def from_wire(cls, obj: Any) -> TransferOptions:
        if not isinstance(obj, dict) or obj.keys() != {"force_reinstall", "auto_start"}:
            bad_message("Offer.options must be a map of exactly force_reinstall and auto_start")
        return cls(obj["force_reinstall"], obj["auto_start"])


@dataclass(frozen=True, slots=True)
class Fetch(_TransferWire):
    """A receiver asks the peer it opened the stream to for an archive, by hash or by service."""

    TYPE: ClassVar[str] = "fetch"
    archive_hash: str | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        if (self.archive_hash is None) == (self.service is None):
            bad_message("Fetch names exactly one of archive_hash and service")
        if self.archive_hash is not None and (
            not isinstance(self.archive_hash, str) or HEX_SHA256.fullmatch(self.archive_hash) is None
        ):
            bad_message(f"Fetch.archive_hash must be 64 lowercase hex digits, got {self.archive_hash!r:.80}")
        if self.service is not None and (
            not isinstance(self.service, str) or SERVICE_NAME.fullmatch(self.service) is None
        ):
            bad_message(f"Fetch.service must be a service name, got {self.service!r:.80}")


@dataclass(frozen=True, slots=True)
class Offer(_TransferWire):
    """The sender's first message: the archive's manifest, the purpose, and a swarm's other peers."""

    TYPE: ClassVar[str] = "offer"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"release"})
    manifest: TransferManifest
    purpose: Purpose = "install"
    options: TransferOptions = field(default_factory=TransferOptions)
    peers: tuple[str, ...] = ()
    release: bytes | None = None
    """The archive's release statement (its exact bytes, at most 4 KiB), when it is signed."""

    def __post_init__(self) -> None:
        if not isinstance(self.manifest, TransferManifest):
            bad_message(f"Offer.manifest must be a TransferManifest, got {type(self.manifest).__name__}")
        if self.purpose not in _PURPOSES:
            bad_message(f"Offer.purpose must be 'install', 'fetch' or 'update', got {self.purpose!r:.40}")
        if not isinstance(self.options, TransferOptions):
            bad_message("Offer.options must be TransferOptions")
        peers = self.peers
        if not isinstance(peers, tuple) or len(peers) > MAX_PEERS:
            bad_message(f"Offer.peers must list at most {MAX_PEERS} peer ids")
        if not all(isinstance(p, str) and _PEER_ID.fullmatch(p) for p in peers) or len(set(peers)) != len(
            peers
        ):
            bad_message("Offer.peers must be distinct base58 peer ids")
        if self.release is not None and (
            type(self.release) is not bytes or len(self.release) > MAX_RELEASE_BYTES
        ):
            bad_message(f"Offer.release must be a byte string of at most {MAX_RELEASE_BYTES} bytes")

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "t": self.TYPE,
            "manifest": self.manifest.to_wire(),
            "purpose": self.purpose,
            "options": self.options.to_wire(),
            "peers": list(self.peers),
        }
        if self.release is not None:  # left out unsigned: a node of before releases reads the offer
            wire["release"] = self.release
        return wire

    @classmethod
    def _from_fields(cls, obj: dict[str, Any], max_total_bytes: int) -> Offer:
        peers = obj["peers"]
        if not isinstance(peers, list):
            bad_message("Offer.peers must be a list")
        manifest = TransferManifest.from_wire(obj["manifest"], max_total_bytes=max_total_bytes)
        options = TransferOptions.from_wire(obj["options"])
        release = obj.get("release")
        if "release" in obj and type(release) is not bytes:  # present means a statement: never null
            bad_message("Offer.release must be a byte string")
        return cls(manifest, obj["purpose"], options, tuple(peers), release)


@dataclass(frozen=True, slots=True)
class Have(_TransferWire):
    """The chunks the sending side holds, verified: a bitfield (see :class:`Bitfield`)."""

    TYPE: ClassVar[str] = "have"
    bits: bytes

    def __post_init__(self) -> None:
        if type(self.bits) is not bytes or not 1 <= len(self.bits) <= _MAX_BITS_BYTES:
            bad_message(f"Have.bits must be a byte string of 1..{_MAX_BITS_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class _ChunkList(_TransferWire):
    """A message that lists chunk indices (a CBOR array on the wire): :class:`Want`, :class:`CancelChunks`."""

    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_indices(type(self).__name__, self.indices)

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TYPE, "indices": list(self.indices)}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any], max_total_bytes: int) -> Self:
        if not isinstance(obj["indices"], list):
            bad_message(f"{cls.__name__}.indices must be a list")
        return cls(tuple(obj["indices"]))


@dataclass(frozen=True, slots=True)
class Want(_ChunkList):
    """Send me these chunks (at most ``MAX_IN_FLIGHT`` asked and not yet received, in all)."""

    TYPE: ClassVar[str] = "want"


@dataclass(frozen=True, slots=True)
class CancelChunks(_ChunkList):
    """Do not send these chunks after all; chunks already under way are still accepted.

    Its type tag is ``"cancel"`` (not to be confused with the RPC protocol's
    :class:`~p2p_orchestrator.wire.Cancel`, which gives up a request).
    """

    TYPE: ClassVar[str] = "cancel"


@dataclass(frozen=True, slots=True)
class Chunk(_TransferWire):
    """Chunk ``index`` of the archive."""

    TYPE: ClassVar[str] = "chunk"
    index: int
    data: bytes

    def __post_init__(self) -> None:
        _check_index("Chunk", self.index)
        if type(self.data) is not bytes or not 1 <= len(self.data) <= MAX_CHUNK_SIZE:
            bad_message(f"Chunk.data must be a byte string of 1..{MAX_CHUNK_SIZE} bytes")

    def __repr__(self) -> str:
        return f"Chunk(index={self.index}, data=<{len(self.data)} bytes>)"


@dataclass(frozen=True, slots=True)
class Done(_TransferWire):
    """The sender will send nothing more on this stream; it owes no chunk."""

    TYPE: ClassVar[str] = "done"


@dataclass(frozen=True, slots=True, eq=False)
class Abort(_TransferWire):
    """The sender ends the transfer because of ``error`` (refused fetch, bad request, disk...)."""

    TYPE: ClassVar[str] = "abort"
    error: OrchestratorError

    def __post_init__(self) -> None:
        check_error("Abort", self.error)

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.TYPE, "error": error_to_wire(self.error)}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any], max_total_bytes: int) -> Abort:
        return cls(error_field("Abort", obj["error"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Abort):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    def __hash__(self) -> int:
        return hash(tuple(error_to_wire(self.error).values()))


@dataclass(frozen=True, slots=True, eq=False)
class Result(_TransferWire):
    """The receiver's last word: ``ok`` with a ``result`` map, or not ``ok`` with an ``error``.

    Build it with :meth:`success` or :meth:`failure`.
    """

    TYPE: ClassVar[str] = "result"
    ok: bool
    result: dict[str, Any] | None = None
    error: OrchestratorError | None = None

    def __post_init__(self) -> None:
        if type(self.ok) is not bool:
            bad_message("Result.ok must be a boolean")
        if self.ok:
            if not isinstance(self.result, dict) or not all(isinstance(k, str) for k in self.result):
                bad_message("a successful Result carries a result map with text keys")
            if self.error is not None:
                bad_message("a successful Result carries no error")
        else:
            if self.result is not None:
                bad_message("a failed Result carries no result")
            check_error("Result", self.error)

    @classmethod
    def success(cls, result: dict[str, Any]) -> Result:
        return cls(True, result, None)

    @classmethod
    def failure(cls, error: OrchestratorError) -> Result:
        return cls(False, None, error)

    def to_wire(self) -> dict[str, Any]:
        error = None if self.error is None else error_to_wire(self.error)
        return {"t": self.TYPE, "ok": self.ok, "result": self.result, "error": error}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any], max_total_bytes: int) -> Result:
        error = obj["error"]
        return cls(obj["ok"], obj["result"], None if error is None else error_field("Result", error))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    def __hash__(self) -> int:
        return hash((self.ok, repr(self.to_wire())))


TransferMessage: TypeAlias = Fetch | Offer | Have | Want | CancelChunks | Chunk | Done | Abort | Result
"""Any message of the transfer protocol."""

SENDER_MESSAGES: tuple[type[TransferMessage], ...] = (Offer, Have, Chunk, Done, Abort)
"""What a sender sends (and a receiver accepts)."""

RECEIVER_MESSAGES: tuple[type[TransferMessage], ...] = (Fetch, Have, Want, CancelChunks, Result)
"""What a receiver sends (and a sender accepts)."""

_MESSAGES = MessageTable[TransferMessage](
    (Fetch, Offer, Have, Want, CancelChunks, Chunk, Done, Abort, Result), what="transfer message"
)


def message_from_wire(obj: Any, *, max_total_bytes: int = DEFAULT_MAX_TRANSFER_BYTES) -> TransferMessage:
    """Build the message a decoded payload describes, refusing anything not exactly right.

    ``ProtocolError(code="bad_message")`` for a non-map, an unknown ``"t"``, a missing or extra
    field, or a field of the wrong type or range; an offer's manifest is checked by
    :meth:`TransferManifest.from_wire` with ``max_total_bytes``.
    """
    cls, received = _MESSAGES.take_apart(obj)
    return cast(TransferMessage, cls._from_fields(received, max_total_bytes))
