"""The vocabulary a node and a service's child process speak over their private channel.

The channel carries the project's RPC messages (:mod:`p2p_orchestrator.wire`) with
``exchange_hello=True``.  Paths use two fixed namespaces, so no service name can
clash with them:

==========================  =========  ==================================================
path                        direction  meaning
==========================  =========  ==================================================
``Hello``                   both       first message; the node's carries the service's
                                       name, version, description, configuration, call
                                       timeout and the names of ``[peers]``; the
                                       runner's its pid
``runner/ready``            child→node ``initialize()`` returned; params: ``methods``
``service/<method>``        node→child call an exposed method: ``params`` (its keyword
                                       arguments) and ``caller`` (``peer_id``, ``role``)
``runner/stop``             node→child run ``cleanup()`` (``grace`` seconds), answer, exit 0
``runner/health``           node→child run ``health_check()`` if the service has one; answer
                                       ``{"healthy", "error", "detail"}`` (never waits for
                                       a call slot: see ``max_concurrent_calls``)
``runner/metrics``          node→child the service's metrics: ``{"metrics"}`` (never
                                       waits for a call slot)
``runner/call``             child→node a proxy call: ``method``, ``params``, ``peer``
``ErrorReply(None, ...)``   child→node the start failed (import, ``Run``, ``initialize()``)
==========================  =========  ==================================================

This module holds only names and numbers: both sides import it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "EXIT_CHANNEL_LOST",
    "EXIT_OUT_OF_MEMORY",
    "EXIT_PARENT_GONE",
    "EXIT_START_FAILED",
    "RESERVED_REQUESTS",
    "RUNNER_CALL",
    "RUNNER_HEALTH",
    "RUNNER_METRICS",
    "RUNNER_READY",
    "RUNNER_STOP",
    "SERVICE_PREFIX",
    "describe_exit",
]

RUNNER_READY: Final = "runner/ready"
RUNNER_STOP: Final = "runner/stop"
RUNNER_CALL: Final = "runner/call"
RUNNER_HEALTH: Final = "runner/health"
RUNNER_METRICS: Final = "runner/metrics"
RESERVED_REQUESTS: Final = 4
"""In-flight requests the child accepts beyond the node's ``max_concurrent_calls``: room
for ``runner/health`` and ``runner/stop``, which never wait behind service calls."""
SERVICE_PREFIX: Final = "service/"

EXIT_START_FAILED: Final = 3
"""The service could not be loaded or initialized; the reason was sent to the node."""
EXIT_OUT_OF_MEMORY: Final = 4
"""The service hit its memory limit; its process state cannot be trusted any more."""
EXIT_PARENT_GONE: Final = 5
"""The node that started the runner had already exited."""
EXIT_CHANNEL_LOST: Final = 6
"""The channel to the node closed or broke while the service ran."""

_EXIT_MEANINGS = {
    EXIT_START_FAILED: "start failed",
    EXIT_OUT_OF_MEMORY: "out of memory",
    EXIT_PARENT_GONE: "node gone",
    EXIT_CHANNEL_LOST: "channel to the node lost",
}


def describe_exit(returncode: int) -> str:
    """``"exit code 3 (start failed)"``, ``"killed by SIGKILL"``..., for people."""
    if returncode < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    meaning = _EXIT_MEANINGS.get(returncode)
    return f"exit code {returncode}" + (f" ({meaning})" if meaning else "")
