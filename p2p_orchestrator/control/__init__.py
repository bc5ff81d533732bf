"""The node's control socket: how the command line (and scripts) drive a running node.

* :mod:`.paths` -- where the socket is (``<home>/control.sock``);
* :mod:`.client` -- :class:`~.client.ControlClient`, blocking (stdlib socket and
  the sans-IO codec, no trio, no libp2p), used by the CLI;
* :mod:`.server` -- :func:`~.server.serve_control`, run by ``p2p-orchestrator node``
  (trio), answering with :mod:`.api` and the methods of :mod:`.methods`.

This ``__init__`` imports nothing, so the client side stays cheap.
"""
