"""Readable output (without ``--json``): rich tables and lines.  rich is imported on first use."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "console",
    "distribution_table",
    "event_text",
    "line",
    "mapping_table",
    "metrics_tables",
    "peers_table",
    "services_table",
    "status_table",
]


@cache
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def _table(title: str | None = None, *columns: str, show_header: bool = True, whole: int = 0) -> Table:
    """A table whose first column is never wrapped when ``whole`` is its width (names, peer IDs).

    Other cells fold rather than lose characters (hashes, addresses).
    """
    from rich import box
    from rich.table import Table

    table = Table(title=title, show_header=show_header, title_justify="left", box=box.SIMPLE_HEAD)
    for index, column in enumerate(columns):
        if index == 0 and whole:
            table.add_column(column, no_wrap=True, min_width=whole)
        else:
            table.add_column(column, overflow="fold")
    return table


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=repr)
    return "" if value is None else str(value)


def line(text: str) -> None:
    """One line of text (rich markup is not interpreted)."""
    console().print(text, markup=False)


def services_table(result: dict[str, Any]) -> None:
    table = _table(
        f"{result['total_installed']} installed, {result['total_running']} running",
        "service",
        "version",
        "state",
        "pid",
        "uptime",
        "installed",
        whole=max((len(name) for name in result["services"]), default=0),
    )
    for name, info in result["services"].items():
        state = info.get("state") or ("running" if info.get("running") else "stopped")
        health = info.get("health")
        if isinstance(health, dict) and health.get("status") == "unhealthy":
            state = f"{state} (unhealthy)"
        uptime = info.get("uptime_seconds")
        table.add_row(
            name,
            _shown(info.get("version") or info.get("manifest", {}).get("version")),
            state,
            _shown(info.get("pid")),
            _duration(uptime) if isinstance(uptime, int | float) else "",
            _shown(info.get("installed_at"))[:16].replace("T", " "),
        )
    console().print(table)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def mapping_table(title: str, data: dict[str, Any]) -> None:
    table = _table(title, "key", "value", show_header=False)
    for key, value in data.items():
        table.add_row(key, _shown(value))
    console().print(table)


def peers_table(result: dict[str, Any]) -> None:
    peers = result["peers"]
    table = _table(
        f"{len(peers)} known peer(s)",
        "peer id",
        "connected",
        "role",
        "pinned",
        "addresses",
        whole=max((len(peer["peer_id"]) for peer in peers), default=0),
    )
    for peer in peers:
        table.add_row(
            peer["peer_id"],
            "yes" if peer["connected"] else "no",
            _shown(peer["role"]),
            "yes" if peer["pinned"] else "",
            "\n".join(peer["addrs"]),
        )
    console().print(table)


def status_table(status: dict[str, Any], node: dict[str, Any] | None) -> None:
    rows = dict(status)
    statistics = rows.pop("statistics", {})
    if node is not None:
        rows = {"peer_id": node["peer_id"], "listen_addrs": node["listen_addrs"], **rows}
    table = _table("orchestrator", "key", "value", show_header=False)
    for key, value in rows.items():
        table.add_row(key, "\n".join(value) if key == "listen_addrs" else _shown(value))
    for key, value in statistics.items():
        table.add_row(f"statistics.{key}", _shown(value))
    console().print(table)


def distribution_table(result: dict[str, Any]) -> None:
    title = (
        f"{result.get('service_name')}: {result.get('successful_distributions')} of "
        f"{result.get('total_nodes')} node(s) succeeded"
    )
    results = result.get("results", {})
    table = _table(title, "node", "result", "detail", whole=max(map(len, results), default=0))
    for node, outcome in results.items():
        ok = bool(outcome.get("success"))
        detail = _installed_detail(outcome.get("result")) if ok else _shown(outcome.get("error"))
        table.add_row(node, "ok" if ok else "failed", detail)
    console().print(table)


def _installed_detail(result: Any) -> str:
    """``started, 990 B in 0.55 s`` from a target's install result (and its ``transfer`` map)."""
    if not isinstance(result, dict):
        return _shown(result)
    parts = ["started" if result.get("auto_started") else "installed"]
    transfer = result.get("transfer")
    if isinstance(transfer, dict) and isinstance(transfer.get("bytes_sent"), int):
        seconds = transfer.get("seconds")
        timing = f" in {seconds:.2f} s" if isinstance(seconds, int | float) else ""
        parts.append(f"{transfer['bytes_sent']} B sent{timing}")
    if result.get("auto_start_error"):
        parts.append(f"start failed: {result['auto_start_error']}")
    return ", ".join(parts)


def event_text(event: dict[str, Any]) -> str:
    """One event on one line: time, type, service and version, then its data."""
    data = event.get("data") or {}
    who = " ".join(str(x) for x in (event.get("service"), event.get("version")) if x)
    details = " ".join(f"{k}={_shown(v)}" for k, v in data.items())
    return " ".join(part for part in (event.get("time", ""), event.get("type", ""), who, details) if part)


def metrics_tables(result: dict[str, Any]) -> None:
    """``get_metrics``: a line for the node, a table of services, then each service's own metrics."""
    node = result.get("node", {})
    figures = ", ".join(f"{key} {_shown(value)}" for key, value in sorted(node.items()))
    line(f"node: {figures}")
    services: dict[str, Any] = result.get("services", {})
    table = _table(None, "SERVICE", "STATE", "HEALTH", "RESTARTS", "CALLS", "ERRORS", "AVG MS", whole=1)
    for name, entry in sorted(services.items()):
        calls = entry.get("calls") or 0
        average = f"{1000 * entry.get('call_seconds', 0) / calls:.2f}" if calls else "-"
        table.add_row(
            name,
            str(entry.get("state")),
            str(entry.get("health")),
            str(entry.get("restart_count")),
            str(calls),
            str(entry.get("call_errors")),
            average,
        )
    console().print(table)
    for name, entry in sorted(services.items()):
        kept = entry.get("metrics")
        if not kept:
            continue
        own = _table(f"{name}: its own metrics", "METRIC", "KIND", "VALUE", whole=1)
        for metric, value in sorted(kept.get("counters", {}).items()):
            own.add_row(metric, "counter", _shown(value))
        for metric, value in sorted(kept.get("gauges", {}).items()):
            own.add_row(metric, "gauge", _shown(value))
        for metric, summary in sorted(kept.get("timers", {}).items()):
            text = (
                f"{summary.get('count')} x, avg {summary.get('avg_ms', 0):.2f} ms, "
                f"min {summary.get('min_ms', 0):.2f}, max {summary.get('max_ms', 0):.2f}"
            )
            own.add_row(metric, "timer", text)
        console().print(own)
