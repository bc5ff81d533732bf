"""The fleet: ``rollout`` (waves, canaries, a health gate, revert) and ``replicas`` (COUNT copies, no leader)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, OperationFailed, pass_cli
from p2p_orchestrator.cli._options import json_option
from p2p_orchestrator.errors import ServiceDistributionError

__all__ = ["register"]

_STYLE = {
    "healthy": "green",
    "already": "green",
    "upgraded": "cyan",
    "upgrading": "cyan",
    "failed": "red",
    "revert_failed": "bold red",
    "reverted": "yellow",
    "unreachable": "magenta",
    "untouched": "dim",
    "pending": "dim",
}


@click.command()
@click.argument("source", required=False)
@click.argument("peer_ids", nargs=-1, metavar="PEER...")
@click.option(
    "--canary", type=click.IntRange(min=0), default=1, show_default=True, help="Targets of the first wave."
)
@click.option(
    "--wave", type=click.IntRange(min=1), default=1, show_default=True, help="Targets per later wave."
)
@click.option(
    "--health-wait",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds an upgraded target must run healthy before it counts.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Failed targets tolerated; one more halts the rollout and reverts it.",
)
@click.option("--status", "status", is_flag=True, help="Show rollouts (all, or SOURCE as a rollout ID).")
@click.option("--abort", "abort", metavar="ID", help="Halt rollout ID and revert what it upgraded.")
@json_option
@pass_cli
def rollout(
    cli: CliContext,
    *,
    source: str | None,
    peer_ids: tuple[str, ...],
    canary: int,
    wave: int,
    health_wait: float,
    max_failures: int,
    status: bool,
    abort: str | None,
    as_json: bool,
) -> None:
    """Upgrade PEERs to a release in waves: SOURCE is an archive file or an installed service.

    First --canary targets, then waves of --wave. Each target installs and
    starts the release and counts only after running it healthy for
    --health-wait seconds; one that does not is reverted to the version it
    had. Past --max-failures the rollout halts: every target it upgraded goes
    back, the rest are never touched, and the command exits 1. The targets
    must give this node the deployer role (admin to revert an upgrade).
    """
    client = cli.client()
    if abort is not None:
        result = client.call("orchestrator/abort_rollout", {"rollout_id": abort})
        cli.output(result, as_json, _show_account)
        return
    if status:
        result = client.call("orchestrator/rollout_status", {"rollout_id": source} if source else {})
        cli.output(result, as_json, _show_status)
        return
    if source is None or not peer_ids:
        raise click.UsageError("rollout needs SOURCE (an archive or a service name) and at least one PEER")
    params: dict[str, Any] = {
        "targets": list(peer_ids),
        "canary": canary,
        "wave": wave,
        "health_wait": health_wait,
        "max_failures": max_failures,
    }
    path = Path(source)
    if path.is_file():
        params["archive_path"] = str(path.resolve())
    else:
        params["service_name"] = source
    if as_json:
        result = client.call("node/rollout", params)
    else:
        with _LiveTargets(list(peer_ids)) as live:
            result = client.call_watching(
                "node/rollout",
                params,
                watch=("node/events", {"limit": 0, "follow": True, "types": ["rollout_progress"]}),
                on_item=live.update,
            )
    cli.output(result, as_json, _show_account)
    if result.get("phase") != "succeeded":
        raise OperationFailed(
            ServiceDistributionError(
                f"rollout {result.get('id')} {result.get('phase')}: {result.get('reason')}",
                code="rollout_halted",
            )
        )


class _LiveTargets:
    """A live table of the targets' states, fed by ``rollout_progress`` events (on stderr)."""

    def __init__(self, peers: list[str]) -> None:
        from rich.live import Live

        self._states: dict[str, tuple[int | None, str, str]] = {peer: (None, "pending", "") for peer in peers}
        self._live = Live(self._table(), console=_render.console(stderr=True), refresh_per_second=8)

    def __enter__(self) -> _LiveTargets:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def update(self, event: Any) -> None:
        if not isinstance(event, dict) or event.get("type") != "rollout_progress":
            return
        data = event.get("data") or {}
        peer = data.get("peer")
        if peer in self._states:
            self._states[peer] = (data.get("wave"), str(data.get("state")), str(data.get("reason") or ""))
            self._live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table("wave", "target", "state", "reason", box=None)
        for peer, (wave, state, reason) in self._states.items():
            style = _STYLE.get(state, "")
            table.add_row("" if wave is None else str(wave), peer, f"[{style}]{state}[/]", reason[:80])
        return table


def _show_account(result: dict[str, Any]) -> None:
    _render.line(
        f"rollout {result['id']}: {result['service_name']} {result['version']} -- {result['phase']}"
        + (f" ({result['reason']})" if result.get("reason") else "")
    )
    targets = result.get("targets", {})
    for number, wave in enumerate(result.get("waves", [])):
        for peer in wave:
            target = targets.get(peer, {})
            state = target.get("state", "?")
            was = target.get("previous_version") or "-"
            reason = f"  {target['reason']}" if target.get("reason") else ""
            _render.line(f"  wave {number}  {peer}  {state:<13} (was {was}){reason}")
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.get("counts", {}).items()))
    _render.line(f"  {counts}")


def _show_status(result: dict[str, Any]) -> None:
    if "rollouts" not in result:
        _show_account(result)
        return
    if not result["rollouts"]:
        _render.line("no rollouts")
    for account in result["rollouts"]:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(account.get("counts", {}).items()))
        _render.line(
            f"{account['id']}  {account['service_name']} {account['version']}  {account['phase']:<10} "
            f"{account['started_at']}  {counts}"
        )


@click.command()
@click.argument("name")
@click.argument("count", type=click.IntRange(min=0), required=False)
@click.option(
    "--peers", "peers", multiple=True, metavar="PEER", help="Only these nodes hold copies (repeat it)."
)
@click.option(
    "--label", metavar="KEY=VALUE", help="Only the nodes with this [node] labels entry hold copies."
)
@click.option("--clear", is_flag=True, help="Remove the rule (the copies running stay as they are).")
@click.option(
    "--min", "min_count", type=click.IntRange(min=0), help="Auto-scaling: at least this many copies."
)
@click.option(
    "--max", "max_count", type=click.IntRange(min=0), help="Auto-scaling: at most this many copies."
)
@click.option(
    "--metric",
    help="Auto-scaling: calls_per_second, or a gauge/counter the service keeps in self.metrics.",
)
@click.option(
    "--target", type=click.FloatRange(min=0, min_open=True), help="Auto-scaling: the metric per copy."
)
@click.option(
    "--cooldown",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Auto-scaling: seconds between changes.",
)
@json_option
@pass_cli
def replicas(
    cli: CliContext,
    *,
    name: str,
    count: int | None,
    peers: tuple[str, ...],
    label: str | None,
    clear: bool,
    min_count: int | None,
    max_count: int | None,
    metric: str | None,
    target: float | None,
    cooldown: float,
    as_json: bool,
) -> None:
    """Keep COUNT copies of service NAME running across the fleet; without COUNT, show where they run.

    Every node that knows the rule places the copies alike among the live
    eligible nodes and starts or stops its own; a node that dies is replaced,
    and when it is back the count settles at COUNT again. COUNT 0 stops them all.
    With --metric and --target, the count moves between --min and --max so the
    metric per running copy stays near the target.
    """
    client = cli.client()
    if count is None and not clear:
        result = client.call("orchestrator/get_replicas", {"service_name": name})
    else:
        params: dict[str, Any] = {"service_name": name, "count": count, "clear": clear}
        if peers:
            params["peers"] = list(peers)
        if label is not None:
            params["label"] = label
        if metric is not None or target is not None:
            scaling = {"min_count": min_count, "max_count": max_count, "metric": metric, "target": target}
            params.update({key: value for key, value in scaling.items() if value is not None})
            params["cooldown"] = cooldown
        result = client.call("orchestrator/set_replicas", params)
    cli.output(result, as_json, _show_replicas)


def _show_replicas(result: dict[str, Any]) -> None:
    rule = result.get("rule")
    if rule is None:
        _render.line(f"{result['service_name']}: no replica rule")
        return
    where = f" on {', '.join(rule['peers'])}" if rule.get("peers") else ""
    where += f" on nodes labelled {rule['label']}" if rule.get("label") else ""
    _render.line(
        f"{result['service_name']}: {rule['count']} cop(ies){where} (rule version {rule['version']})"
    )
    running = set(result.get("running", []))
    for peer in result.get("desired", []):
        _render.line(f"  {peer}  {'running' if peer in running else 'starting'}")
    for peer in sorted(running - set(result.get("desired", []))):
        _render.line(f"  {peer}  running (extra: stopping)")
    _render.line(f"  {len(result.get('live', []))} live eligible node(s)")


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(rollout)
    group.add_command(replicas)
