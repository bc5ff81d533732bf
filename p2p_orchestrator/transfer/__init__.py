"""Moving service archives between nodes: chunked, hash-verified, resumable (sans-IO).

Bytes and messages in, messages and actions out; no sockets, no trio, no libp2p -- only blocking
file I/O for the chunks, which adapters run in worker threads.  The pieces, each usable alone:

* the archive's description -- :class:`TransferManifest` (sizes, chunk hashes, root) and
  :func:`build_manifest`, which reads a file once;
* the receiver's storage -- :class:`ChunkStore` (what the receiver needs of it: it is given
  one, as the sender is given a way to read chunks), :class:`PartialTransfer` (the store on
  disk: a sparse file plus a ledger of verified chunks that survives restarts) and
  :class:`PartialStore` (all of them, bounded in size and age, with dedup against archives the
  node already has);
* the protocol -- :data:`TRANSFER_PROTOCOL_ID`, its messages (:class:`Offer`, :class:`Have`,
  :class:`Want`, :class:`CancelChunks`, :class:`Chunk`, :class:`Done`, :class:`Abort`,
  :class:`Result`, :class:`Fetch`), :class:`TransferChannel` (the RPC codec's framing and strict
  CBOR), and two state machines: :class:`TransferSender`, which serves wants, and
  :class:`TransferReceiver`, which asks one or many senders for what it lacks and refuses
  every lie;
* a swarm's schedule -- :class:`SwarmPlan` (which target fetches which chunk from the origin)
  and :class:`SwarmScheduler` (rarest first among peers, the plan at the origin).

Refusals are :class:`~p2p_orchestrator.errors.ProtocolError` (bytes or message order) or
:class:`~p2p_orchestrator.errors.ServiceDistributionError` with a stable code (see
:mod:`.errors`).  ``docs/protocol.md`` ("Transfer protocol") is the specification.
"""

from . import errors
from ._constants import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CORRUPT,
    DEFAULT_MAX_TRANSFER_BYTES,
    DEFAULT_PARTIAL_BUDGET,
    DEFAULT_PARTIAL_MAX_AGE,
    DEFAULT_SYNC_BYTES,
    DEFAULT_WINDOW,
    HASH_BYTES,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MAX_IN_FLIGHT,
    MAX_PEERS,
    MIN_CHUNK_SIZE,
    TRANSFER_FRAME_BYTES,
    TRANSFER_PROTOCOL_ID,
)
from .actions import Action, ChunkRejected, ChunkStored, Send, SourceEnded, TransferComplete
from .bitfield import Bitfield
from .chunk_store import ChunkStore
from .errors import ERROR_CODES
from .manifest import TransferManifest, build_manifest, compute_root
from .messages import (
    RECEIVER_MESSAGES,
    SENDER_MESSAGES,
    Abort,
    CancelChunks,
    Chunk,
    Done,
    Fetch,
    Have,
    Offer,
    Purpose,
    Result,
    TransferMessage,
    TransferOptions,
    Want,
    message_from_wire,
)
from .partial import PartialTransfer
from .partial_store import PartialInfo, PartialStore
from .protocol import TransferChannel, encode_message
from .receiver import Awaiting, ReceiverState, TransferReceiver
from .schedule import ChunkScheduler, SourceId
from .sender import SenderAwaiting, SenderState, TransferSender
from .swarm_schedule import SwarmPlan, SwarmScheduler

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_CORRUPT",
    "DEFAULT_MAX_TRANSFER_BYTES",
    "DEFAULT_PARTIAL_BUDGET",
    "DEFAULT_PARTIAL_MAX_AGE",
    "DEFAULT_SYNC_BYTES",
    "DEFAULT_WINDOW",
    "ERROR_CODES",
    "HASH_BYTES",
    "MAX_CHUNKS",
    "MAX_CHUNK_SIZE",
    "MAX_IN_FLIGHT",
    "MAX_PEERS",
    "MIN_CHUNK_SIZE",
    "RECEIVER_MESSAGES",
    "SENDER_MESSAGES",
    "TRANSFER_FRAME_BYTES",
    "TRANSFER_PROTOCOL_ID",
    "Abort",
    "Action",
    "Awaiting",
    "Bitfield",
    "CancelChunks",
    "Chunk",
    "ChunkRejected",
    "ChunkScheduler",
    "ChunkStore",
    "ChunkStored",
    "Done",
    "Fetch",
    "Have",
    "Offer",
    "PartialInfo",
    "PartialStore",
    "PartialTransfer",
    "Purpose",
    "ReceiverState",
    "Result",
    "Send",
    "SenderAwaiting",
    "SenderState",
    "SourceEnded",
    "SourceId",
    "SwarmPlan",
    "SwarmScheduler",
    "TransferChannel",
    "TransferComplete",
    "TransferManifest",
    "TransferMessage",
    "TransferOptions",
    "TransferReceiver",
    "TransferSender",
    "Want",
    "build_manifest",
    "compute_root",
    "encode_message",
    "errors",
    "message_from_wire",
]
