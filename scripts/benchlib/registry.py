"""Every scenario of the benchmark issue, by the name the JSON uses, in report order.

To add the project side of a scenario when its feature lands, write an async runner that
returns a :class:`~benchlib.model.Measurement` in the scenario's unit and put it in the
scenario's ``project=`` below (see docs/benchmarks.md, "Adding a scenario").
"""

from __future__ import annotations

from benchlib import (
    baselines_libp2p,
    baselines_process,
    baselines_supervisord,
    bittorrent,
    capabilities,
    project,
    project_load,
    project_memory,
    project_network,
    project_replicas,
    project_rollout,
    project_swarm,
    project_transfer,
    project_update,
)
from benchlib.model import Baseline, Outcome, Scenario, Target

__all__ = ["SCENARIOS", "by_name"]


def _reported(note: str) -> Target:
    """A figure that is reported without a pass/fail bar of its own."""
    return Target(f"reported only: {note}", lambda outcome: True)


def _ratio_at_most(limit: float, text: str) -> Target:
    return Target(text, lambda o: o.ratio is not None and o.ratio <= limit)


def _resume_ok(outcome: Outcome) -> bool:
    archive, chunk = outcome.extra.get("archive_bytes"), outcome.extra.get("chunk_bytes")
    return isinstance(archive, int) and isinstance(chunk, int) and outcome.value <= archive / 2 + chunk


_SUPERVISORD = "supervisord: the example service as a plain supervised program"


def _swarm(hosts: int) -> Scenario:
    if hosts == 16:
        target = Target(
            "T(16)/T(1) <= 2.0, <= 1.0x BitTorrent, origin upload <= 2x the archive (issue 6)",
            lambda o: (
                o.ratio is not None
                and o.ratio <= 1.0
                and o.extra.get("t16_over_t1", 99.0) <= 2.0
                and o.extra.get("origin_upload_over_archive", 99.0) <= 2.0
            ),
        )
    else:
        target = _reported("the targets are set at N = 16")
    return Scenario(
        name=f"swarm_n{hosts}",
        unit="s",
        description=f"deliver and install a 16 MiB archive on {hosts} testbed host(s) with 20 Mbit/s links",
        target=target,
        requires=capabilities.swarm,
        project=project_swarm.project(hosts),
        baseline=bittorrent.baseline(hosts),
        needs=capabilities.testbed,
    )


def _auto_update() -> Scenario:
    return Scenario(
        name="auto_update_n16",
        unit="s",
        description="publish a signed 16 MiB release until all 15 followers run it (16 testbed hosts, 20 Mbit/s)",
        target=Target(
            "<= 1.3x a swarm distribution to the same 15 nodes in the same run, publisher upload <= 1.3 copies"
            " (issue 16)",
            lambda o: (
                o.ratio is not None
                and o.ratio <= 1.3
                and o.extra.get("publisher_upload_over_archive", 99.0) <= 1.3
            ),
        ),
        requires=project_update.requires,
        project=project_update.project,
        baseline=Baseline(
            'distribute_service(strategy="swarm") of a signed release of the same size from the publisher'
            " to the same 15 followers (same testbed and processes, interleaved with the updates)",
            project_update.baseline,
        ),
        needs=capabilities.testbed,
        timeout=(400.0, 1800.0),
    )


def _rollout() -> Scenario:
    return Scenario(
        name="rollout_16",
        unit="s",
        description="rollout_archive of a 16 MiB release to 16 targets, 1 canary then waves of 4, health_wait 1 s"
        " (17 testbed hosts, 20 Mbit/s)",
        target=Target(
            "reported only: time against a swarm to the same 16 targets; ok when every rollout succeeded"
            " with all 16 targets healthy (issue 17)",
            lambda o: o.extra.get("all_succeeded") is True,
        ),
        requires=project_rollout.requires,
        project=project_rollout.project,
        baseline=Baseline(
            'distribute_service(strategy="swarm", auto_start=True) of an archive of the same size from the'
            " coordinator to the same 16 targets (same testbed and processes, interleaved with the rollouts)",
            project_rollout.baseline,
        ),
        needs=capabilities.testbed,
        timeout=(400.0, 1800.0),
    )


def _replica_failover() -> Scenario:
    return Scenario(
        name="replica_failover",
        unit="s",
        description="SIGKILL the node process holding the one copy of a replicated service (replicas 1,"
        " 3 node processes) until another node answers its method",
        target=Target("median < 10 s with default heartbeat settings (issue 17)", lambda o: o.value < 10),
        requires=project_replicas.requires,
        project=project_replicas.project,
        baseline=Baseline(
            "the local restart: SIGKILL of the service's own process until the same node answers again"
            " (restart policy on-failure, first delay 0.5 s; another node process, same caller)",
            project_replicas.baseline,
        ),
        timeout=(240.0, 900.0),
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="install_to_running",
        unit="ms",
        description="install the example service's archive until it runs (the service on asyncio)",
        target=Target(
            "p50 < 400 ms (issue 3) and <= 0.6x supervisord (issue 18)",
            lambda o: o.value < 400 and o.ratio is not None and o.ratio <= 0.6,
        ),
        requires=capabilities.runtime,
        project=project.install_to_running,
        baseline=Baseline(
            _SUPERVISORD + " (the service on asyncio), startProcess to ready",
            baselines_supervisord.install_to_running,
            tools=baselines_supervisord.supervisord_missing,
        ),
    ),
    Scenario(
        name="install_to_running_trio",
        unit="ms",
        description="install the example service's archive until it runs (the service on trio)",
        target=Target("p50 < 400 ms (issue 3)", lambda o: o.value < 400),
        requires=capabilities.runtime,
        project=project.install_to_running_trio,
        baseline=Baseline(
            _SUPERVISORD + " (the service on trio), startProcess to ready",
            baselines_supervisord.install_to_running_trio,
            tools=baselines_supervisord.supervisord_missing,
        ),
    ),
    Scenario(
        name="sandbox_cost",
        unit="ms",
        description="install the example service (asyncio) until it runs, confined by Landlock",
        target=_ratio_at_most(1.1, "p50 <= 1.1x the same start unconfined (the sandbox's cost)"),
        requires=capabilities.runtime,
        project=project.install_to_running,
        baseline=Baseline(
            "the same start with [runtime] sandbox = false", project.install_to_running_unconfined
        ),
    ),
    Scenario(
        name="restart_latency",
        unit="ms",
        description="restart the running example service until it runs again",
        target=_ratio_at_most(0.6, "p50 <= 0.6x supervisord (issue 18)"),
        requires=capabilities.runtime,
        project=project.restart_latency,
        baseline=Baseline(
            _SUPERVISORD + ", stopProcess + startProcess to ready",
            baselines_supervisord.restart_latency,
            tools=baselines_supervisord.supervisord_missing,
        ),
    ),
    Scenario(
        name="local_call",
        unit="ms",
        description='orch.rpc.call("example_service/example_method", {}) on the same node',
        target=Target("p50 < 1 ms (issue 3)", lambda o: o.value < 1),
        requires=capabilities.runtime,
        project=project.local_call,
        baseline=Baseline(
            "CBOR request/response over a socketpair to the example service in a child process",
            baselines_process.socketpair_call,
        ),
    ),
    Scenario(
        name="service_idle_rss",
        unit="MiB",
        description="resident memory of a running example service's process, idle (on asyncio)",
        target=Target("< 40 MiB (issue 3)", lambda o: o.value < 40),
        requires=capabilities.runtime,
        project=project.service_idle_rss,
        baseline=Baseline("a bare python process idling in asyncio.run", baselines_process.bare_asyncio_rss),
    ),
    Scenario(
        name="service_idle_rss_trio",
        unit="MiB",
        description="resident memory of a running example service's process, idle (on trio)",
        target=Target("< 40 MiB (issue 3)", lambda o: o.value < 40),
        requires=capabilities.runtime,
        project=project.service_idle_rss_trio,
        baseline=Baseline(
            'bare python -c "import trio; trio.run(trio.sleep_forever)"', baselines_process.bare_trio_rss
        ),
    ),
    Scenario(
        name="hundred_services",
        unit="ms",
        description="100 services running on one node: list_services latency",
        target=Target("all 100 reach running; list_services p50 < 50 ms (issue 3)", lambda o: o.value < 50),
        requires=capabilities.runtime,
        project=project.hundred_services,
        baseline=None,
        no_baseline="the figure is absolute (issue 3)",
        timeout=(300.0, 900.0),
    ),
    Scenario(
        name="hundred_services_pss",
        unit="MiB",
        description="total PSS of 100 idle services on one node (RSS sum, the node's own RSS in extra)",
        target=Target("<= 1 GiB total PSS for 100 idle services (issue 18)", lambda o: o.value <= 1024),
        requires=capabilities.runtime,
        project=project_memory.hundred_services_pss,
        baseline=Baseline(
            "100 bare python processes idling in asyncio.run (as service_idle_rss's baseline), total PSS",
            baselines_process.hundred_bare_asyncio_pss,
        ),
        timeout=(240.0, 600.0),
    ),
    Scenario(
        name="remote_call",
        unit="ms",
        description="a trivial public service method called on another node",
        target=_ratio_at_most(1.2, "p50 <= 1.2x the raw py-libp2p stream (issue 4)"),
        requires=capabilities.node,
        project=project_network.remote_call,
        baseline=Baseline(
            "raw py-libp2p (Noise+Yamux, 2 processes): new stream + 32 B request/response + close",
            baselines_libp2p.remote_call,
        ),
    ),
    Scenario(
        name="transfer_throughput",
        unit="MiB/s",
        description="one archive transfer between two nodes, incompressible, verification included",
        target=Target(
            ">= 0.8x the raw py-libp2p stream (issue 5)", lambda o: o.ratio is not None and o.ratio >= 0.8
        ),
        requires=capabilities.transfer,
        project=project_transfer.transfer_throughput,
        baseline=Baseline(
            "raw py-libp2p (Noise+Yamux, 2 processes): one stream, 1 MiB writes, same bytes",
            baselines_libp2p.transfer_throughput,
        ),
    ),
    Scenario(
        name="receiver_rss_256mib",
        unit="MiB",
        description="growth of the receiver's peak RSS while it receives a 256 MiB archive",
        target=Target("peak RSS growth <= 16 MiB, a few chunk sizes (issue 5)", lambda o: o.value <= 16),
        requires=capabilities.transfer,
        project=project_transfer.receiver_rss_256mib,
        baseline=Baseline(
            "raw py-libp2p receiver (2 processes) reading 256 MiB from one stream and discarding it",
            baselines_libp2p.receiver_peak_rss,
        ),
    ),
    Scenario(
        name="transfer_cpu_per_mib",
        unit="ms/MiB",
        description="CPU time per MiB of the receiving node for a 256 MiB transfer, its install taken out",
        target=_ratio_at_most(1.3, "<= 1.3x the raw py-libp2p stream's receiver (issue 18)"),
        requires=capabilities.transfer,
        project=project_transfer.transfer_cpu_per_mib,
        baseline=Baseline(
            "raw py-libp2p receiver (2 processes) reading as many bytes from one stream (1 MiB writes)",
            baselines_libp2p.receiver_cpu_per_mib,
        ),
        timeout=(180.0, 600.0),
    ),
    Scenario(
        name="distribute_parallel_8",
        unit="s",
        description="distribute_service of a 16 MiB archive to 8 nodes",
        target=_ratio_at_most(0.6, "<= 0.6x 8 sequential single-node distributions (issue 5)"),
        requires=capabilities.transfer,
        project=project_transfer.distribute_parallel_8,
        baseline=Baseline(
            "8 sequential single-node distribute_service calls (the project's own; same run, its own 8 nodes)",
            project_transfer.distribute_sequential_8,
        ),
        timeout=(180.0, 900.0),
    ),
    Scenario(
        name="resume_bytes",
        unit="bytes",
        description="bytes sent to finish a transfer that was cut at 50%",
        target=Target(
            "only the missing half is sent (<= half the archive + one chunk) (issue 5)", _resume_ok
        ),
        requires=capabilities.transfer,
        project=project_transfer.resume_bytes,
        baseline=None,
        no_baseline="the ideal is half the archive, a number rather than a program",
    ),
    Scenario(
        name="load_200_callers",
        unit="calls/s",
        description="200 concurrent remote callers of a service method: throughput (p99 in extra)",
        target=_reported("every call answered or refused with busy; throughput and p99 (issue 9)"),
        requires=capabilities.all_of(capabilities.runtime, capabilities.node),
        project=project_load.load_200_callers,
        baseline=Baseline(
            "raw py-libp2p echo (2 processes), 200 concurrent callers, a new stream per call",
            baselines_libp2p.load_callers,
        ),
    ),
    *(_swarm(hosts) for hosts in (1, 4, 8, 16)),
    _auto_update(),
    _rollout(),
    _replica_failover(),
)


def by_name() -> dict[str, Scenario]:
    """The scenarios keyed by name."""
    return {scenario.name: scenario for scenario in SCENARIOS}
