"""The RPC protocol (``/p2p-orchestrator/rpc/1.0.0``) over libp2p streams: the node's adapter of
:mod:`p2p_orchestrator.wire`.

* :mod:`._handler`: admits and contains inbound streams; :mod:`._server` answers one stream;
* :mod:`._pool` keeps one outbound stream per peer; :mod:`._client` multiplexes our calls on it;
* :mod:`._sender` writes a connection's frames to a stream.
"""
