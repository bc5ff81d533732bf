"""The dashboard: the fleet's live view in a browser, served by a node with ``[dashboard] listen``.

One concept per module:

* :mod:`.errors` -- :class:`~.errors.DashboardError` and its stable codes;
* :mod:`.token` -- the per-node token that actions need (``<home>/dashboard.token``, 0600);
* :mod:`.guard` -- the checks every request passes: the ``Host`` it names, the token, same origin;
* :mod:`.fleet` -- :class:`~.fleet.FleetView`, what the pages show, gathered from this node's
  orchestrator and from its peers over the RPC protocol (as their roles let this node read);
* :mod:`.tracker` -- what the view remembers between requests: distributions in progress, and
  the recent figures the sparklines draw;
* :mod:`.actions` -- the operations a page may ask for (start, stop, restart, rollback, rollout,
  replicas), each one RPC method;
* :mod:`.feed` -- the live feed: the node's events as server-sent events;
* :mod:`.app` -- the HTTP routes (starlette), and :mod:`.server` -- serving them (hypercorn on
  trio) in the node's nursery;
* ``static/`` -- the page itself (HTML, CSS, vanilla JavaScript), shipped as package data: no
  build step, nothing fetched from elsewhere.

It sits beside ``control/`` above the node layer; nothing below imports it.  This ``__init__``
imports nothing, so ``p2p-orchestrator dashboard --token`` stays cheap.
"""
