"""The service runtime: each running service in its own supervised child process.

Parent side (the node):

* :mod:`~p2p_orchestrator.runtime.supervisor`: one supervising loop per started
  service, restarts under a :class:`~p2p_orchestrator.runtime.policy.RestartPolicy`
  (:mod:`~p2p_orchestrator.runtime.backoff`), health probes and hang detection
  (:mod:`~p2p_orchestrator.runtime.health`); what it knows of each service is a
  :class:`~p2p_orchestrator.runtime.unit.ServiceUnit` with its state machine
  (:mod:`~p2p_orchestrator.runtime.states`); calls into and out of services are
  in :mod:`~p2p_orchestrator.runtime.calls`;
* :mod:`~p2p_orchestrator.runtime.plan`: what to start (version, interpreter,
  configuration, timeouts, memory limit, policies) from the store and the
  operator's settings;
* :mod:`~p2p_orchestrator.runtime.process`: one child process and the channel to it,
  start timeout, stop escalation (polite stop, SIGTERM, SIGKILL), admission of calls;
* :mod:`~p2p_orchestrator.runtime.dependencies` (start and stop order between
  services), :mod:`~p2p_orchestrator.runtime.revert` (upgrades on trial),
  :mod:`~p2p_orchestrator.runtime.venvs` (virtual environments for
  ``requirements.txt``);
* :mod:`~p2p_orchestrator.runtime.logs` and :mod:`~p2p_orchestrator.runtime.pidfiles`.

Child side: :mod:`~p2p_orchestrator.runtime.runner` (started as a script with
``python -I``), which loads the service and serves it with
:mod:`~p2p_orchestrator.runtime._host`.  Both sides speak
:mod:`~p2p_orchestrator.runtime.protocol` through a
:class:`~p2p_orchestrator.runtime._channel.FramedChannel`.

This ``__init__`` imports nothing on purpose: the child imports modules of this
package and must stay small.
"""
