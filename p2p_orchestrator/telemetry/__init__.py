"""Node and service metrics for Prometheus: the ``[metrics] listen`` endpoint.

* :mod:`.prometheus` turns a ``get_metrics`` report into the Prometheus text
  format with prometheus-client (no I/O);
* :mod:`.http` serves it on ``GET /metrics`` with trio and h11.

Nothing here imports libp2p: a node without the network layer can serve it too.
"""

from p2p_orchestrator.telemetry.http import serve_metrics
from p2p_orchestrator.telemetry.prometheus import CONTENT_TYPE, render_report

__all__ = ["CONTENT_TYPE", "render_report", "serve_metrics"]
