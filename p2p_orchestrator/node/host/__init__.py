"""The py-libp2p host of a node and what makes it safe to run: the edge of the network adapter.

* :mod:`._build`: the host, built one way only (Noise, Yamux, TCP), and address helpers;
* :mod:`._patches`: the fixes to py-libp2p 0.8.1 a node cannot run without, installed once,
  with a loud check of the library's version;
* :mod:`._yamux_guard`, :mod:`._inbound_gate`, :mod:`._library_protocols`: bounds on what a
  peer can make the node hold (buffers, connections, py-libp2p's own protocols);
* :mod:`._dialer`: connecting to peers by ID and keeping bootstrap and pinned peers connected;
* :mod:`._stream`, :mod:`._read_deadline`, :mod:`._limits`, :mod:`._yamux_reads`,
  :mod:`._frame_reads`, :mod:`._yamux_writes`: a typed face of one stream, reads under
  deadlines, admission counts, and the writes of its frames.

Everything else in :mod:`p2p_orchestrator.node` speaks to libp2p through this room.
"""
