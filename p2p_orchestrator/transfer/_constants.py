"""Protocol identifiers, sizes and default limits of the transfer protocol."""

from __future__ import annotations

from typing import Final

from ..archive import ArchiveLimits

TRANSFER_PROTOCOL_ID: Final = "/p2p-orchestrator/transfer/1.0.0"
"""The libp2p protocol id negotiated (multistream-select) for archive transfer streams."""

HASH_BYTES: Final = 32
"""Size of a sha256 digest: every chunk hash and the manifest root."""

MIN_CHUNK_SIZE: Final = 64 * 1024
"""Smallest chunk a manifest may declare (64 KiB: smaller writes are slow on py-libp2p)."""

MAX_CHUNK_SIZE: Final = 4 * 1024 * 1024
"""Largest chunk a manifest may declare (4 MiB): bounds what one frame can make a receiver hold."""

DEFAULT_CHUNK_SIZE: Final = 1024 * 1024
"""Chunk size of the manifests this node builds (1 MiB), chosen from measurements.

Measured on the project's 2-core machine (Python 3.11, shared with other jobs: load 5-30, so
the ranges below span several runs).  Per-byte CPU of the pieces, 64 MiB of random data;
"encode" is ``encode_payload`` + ``encode_frame`` of a ``chunk``, "decode" is ``FrameDecoder``
fed 64 KiB reads (what Yamux delivers) + ``decode_payload``::

    chunk     sha256        sha256+pwrite  encode        decode
    64 KiB    1.1-1.2 GB/s  0.7-1.1 GB/s   1.7-4.5 GB/s  0.8-2.5 GB/s
    256 KiB   0.7-1.3 GB/s  0.5-1.1 GB/s   3.4-5.9 GB/s  1.6-3.6 GB/s
    1 MiB     0.8-1.3 GB/s  0.8-1.1 GB/s   2.0-3.8 GB/s  1.9-2.4 GB/s
    2 MiB     0.9-1.2 GB/s  0.7-1.0 GB/s   2.3-3.2 GB/s  1.5-1.8 GB/s

One Noise+Yamux stream, two hosts in one process, 64 MiB in writes of one size (MB/s, 2 runs):
64 KiB 38/40, 256 KiB 74/53, 1 MiB 75/65, 2 MiB 111/58, 4 MiB 81/45.  This package's whole
transfer (sender, channel, receiver, verify, write, finish) over such a stream, 64 MiB, per
chunk size (MB/s, 3 runs; raw 1 MiB writes in the same runs: 98/87/45): 256 KiB 58/38/33,
512 KiB 65/49/40, **1 MiB 70/59/42**, 2 MiB 61/41/33.

Why 1 MiB: py-libp2p's per-write cost dominates everything else, and 1 MiB was the best chunk
in every end-to-end run; the CPU side stays at ~1 GB/s or more at every size, an order above the
stream.  Also one ``want`` and one frame per MiB, 32 bytes of manifest per MiB (8 KiB for
256 MiB), at most 1 MiB re-sent after a cut, and a receiver holding a few MiB at most.  2 MiB
was no faster and its copies fall out of the CPU caches.  Note: in the pipeline measured in
memory, framing at 1 MiB costs ~2 ms/MiB more than at 256 KiB (4.8 against 2.8 ms/MiB), all of
it glibc serving each >=1 MiB buffer with fresh pages (with ``MALLOC_MMAP_THRESHOLD_`` raised,
both cost 2.7 ms/MiB).  A swarm, where a chunk must arrive whole before it can be passed on,
may prefer smaller chunks: the size is a per-manifest choice (:func:`build_manifest`).
"""

MAX_CHUNKS: Final = 65536
"""Most chunks one manifest may list: bounds the manifest to 2 MiB of hashes, so it fits a frame."""

DEFAULT_MAX_TRANSFER_BYTES: Final = ArchiveLimits().max_compressed_bytes
"""Default cap on one archive's size (the store's own compressed-archive limit, 256 MiB)."""

TRANSFER_FRAME_BYTES: Final = MAX_CHUNK_SIZE + 64 * 1024
"""Frame payload cap on transfer streams: the largest chunk plus room for the message around it."""

MAX_IN_FLIGHT: Final = 16
"""Most chunks a receiver may have asked one sender for and not yet received (senders refuse more)."""

DEFAULT_WINDOW: Final = 4
"""Chunks a receiver keeps requested from each sender by default (4 MiB with 1 MiB chunks)."""

DEFAULT_MAX_CORRUPT: Final = 3
"""Corrupt chunks a receiver tolerates from one sender (each is asked again) before dropping it."""

MAX_PEERS: Final = 1024
"""Most peer ids an ``offer`` may list."""

MAX_RELEASE_BYTES: Final = 4096
"""Largest release statement an ``offer`` may carry (a statement is about 200 bytes)."""

DEFAULT_PARTIAL_BUDGET: Final = 1024 * 1024 * 1024
"""Default cap on the total size of the partial transfers a node keeps on disk (1 GiB)."""

DEFAULT_PARTIAL_MAX_AGE: Final = 24 * 3600.0
"""Default age (seconds since last progress) after which a partial transfer is deleted."""

DEFAULT_SYNC_BYTES: Final = 16 * 1024 * 1024
"""A partial transfer flushes its data and ledger to disk after this many newly verified bytes."""
