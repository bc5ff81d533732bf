"""Human-readable output: one console line per scenario, and the results table of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BEGIN", "END", "console_line", "markdown_table", "write_docs"]

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        return f"{value:.3g}" if value >= 1 else f"{value:.3f}"
    return str(value)


def _spread(result: dict[str, Any]) -> str:
    """``p99 X`` when there were enough samples for one, else ``min-max``."""
    if result.get("p99") is not None:
        return f"p99 {_number(result['p99'])}"
    if result.get("min") is not None:
        return f"{_number(result['min'])}-{_number(result['max'])}"
    return "-"


def console_line(result: dict[str, Any]) -> str:
    """One line: name, status, value and spread, baseline, ratio, target verdict or reason."""
    base = result["baseline"]
    baseline = f"baseline {_number(base.get('value'))} ({_spread(base)})"
    head = f"{result['name']:<22} {result['status']:<8}"
    if result["status"] == "ok":
        verdict = "meets" if result["ok"] else "MISSES"
        return (
            f"{head} {_number(result['value'])} {result['unit']} ({_spread(result)}), {baseline}, "
            f"ratio {_number(result['ratio'])}, {verdict} target: {result['target']}"
        )
    if base.get("value") is not None:
        return f"{head} {baseline} {result['unit']}; {result['reason']}"
    return f"{head} {result['reason']}"


def markdown_table(document: dict[str, Any]) -> str:
    """The results block: when, where, the command, and one row per scenario."""
    machine = document["machine"]
    libraries = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items() if v)
    source = document.get("source") or {}
    commit = (source.get("commit") or "unknown")[:12]
    tree = " plus uncommitted changes" if source.get("modified") else ""
    lines = [
        f"Measured {document['date']} with `{document['command']}`",
        f"({'quick' if document['quick'] else 'full'} mode, {document['seconds']:.0f} s) on commit {commit}{tree}.",
        "",
        f"Machine: {machine['cpu_count']} CPU ({machine['cpu_model']}), {machine['memory_mib']} MiB, "
        f"Linux {machine['kernel']}, load {machine['load_average']} at start; "
        f"Python {machine['python']}; {libraries}.",
        "",
        "| scenario | unit | status | project p50 | spread | baseline p50 | baseline spread | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in document["scenarios"]:
        base = result["baseline"]
        status = result["status"]
        if status != "ok" and result["reason"]:
            status = f"{status}: {result['reason']}"
        met = ("yes" if result["ok"] else "**no**") if result["status"] == "ok" else "-"
        cells = [
            f"`{result['name']}`",
            result["unit"],
            status.replace("|", "/"),
            _number(result["value"]),
            _spread(result) if result["value"] is not None else "-",
            _number(base.get("value")),
            _spread(base) if base.get("value") is not None else "-",
            _number(result["ratio"]),
            result["target"].replace("|", "/"),
            met,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    extras = [
        f"`{result['name']}` {side}: " + ", ".join(f"{key} {_number(value)}" for key, value in extra.items())
        for result in document["scenarios"]
        for side, extra in (("project", result.get("extra")), ("baseline", result["baseline"].get("extra")))
        if extra
    ]
    if extras:
        lines += ["", "Context figures: " + "; ".join(extras) + "."]
    return "\n".join(lines)


def write_docs(path: Path, document: dict[str, Any]) -> None:
    """Replace the block between the markers of ``path`` with this run's table (append it if absent)."""
    block = f"{BEGIN}\n{markdown_table(document)}\n{END}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
