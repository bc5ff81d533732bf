"""Moving archives between nodes: the transfer protocol (``/p2p-orchestrator/transfer/1.0.0``)
and swarm distribution, the node's adapter of :mod:`p2p_orchestrator.transfer`.

* :mod:`.transfers`: ``NodeTransfers``, the transfer side of a running node, which owns the rest;
* :mod:`.context`: the narrow view of it its parts are given;
* :mod:`.handler`: inbound streams (pushes to install, fetches to serve);
* :mod:`.pusher` and :mod:`.swarm_origin`: ``distribute_service``, plain and swarm;
  :mod:`.fetcher`: ``fetch_service``;
* :mod:`.swarm_member` and :mod:`.swarm_registry`: this node as a target of a swarm;
* :mod:`._send`, :mod:`._receive`, :mod:`._stream`, :mod:`._archives`: one session each way, the
  framed stream, the archives served.
"""
