"""The benchmark script keeps working: its quick mode on one cheap scenario, and its docs table.

``scripts/bench.py --quick --only local_call`` measures the socketpair baseline (and the project's
local call once the runtime is there); every other scenario must still be listed.  Nothing here
needs the ``bench`` extra: scenarios whose tools are missing are reported, not run.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "scripts" / "bench.py"
NAMES = [
    "install_to_running",
    "install_to_running_trio",
    "sandbox_cost",
    "restart_latency",
    "local_call",
    "service_idle_rss",
    "service_idle_rss_trio",
    "hundred_services",
    "hundred_services_pss",
    "remote_call",
    "transfer_throughput",
    "receiver_rss_256mib",
    "transfer_cpu_per_mib",
    "distribute_parallel_8",
    "resume_bytes",
    "load_200_callers",
    "swarm_n1",
    "swarm_n4",
    "swarm_n8",
    "swarm_n16",
    "auto_update_n16",
    "rollout_16",
    "replica_failover",
]
STATUSES = {"ok", "missing", "skipped", "error"}
KEYS = {
    "name",
    "unit",
    "value",
    "p99",
    "min",
    "max",
    "samples",
    "baseline",
    "ratio",
    "target",
    "ok",
    "status",
}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def test_quick_run_of_one_scenario_lists_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(BENCH), "--quick", "--only", "local_call", "--json", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(out.read_text())

    assert document["quick"] is True
    assert "--only local_call" in document["command"]
    assert document["stray_processes"] == []
    machine = document["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"] and machine["kernel"]
    assert {"trio", "libp2p", "cbor2"} <= set(machine["libraries"])

    results = {r["name"]: r for r in document["scenarios"]}
    assert [r["name"] for r in document["scenarios"]] == NAMES
    for result in results.values():
        assert set(result) >= KEYS, result["name"]
        assert result["status"] in STATUSES, result
        assert {"name", "value"} <= set(result["baseline"])
        if result["status"] != "ok":
            assert result["reason"] and result["ok"] is False, result
        if result["name"] != "local_call":
            assert result["status"] == "skipped" and result["reason"] == "not selected (--only)"

    measured = results["local_call"]
    assert measured["status"] in {"ok", "missing"}, measured["reason"]
    baseline = measured["baseline"]
    assert _positive(baseline["value"]) and baseline["samples"] >= 20
    assert baseline["min"] <= baseline["value"] <= baseline["p99"] <= baseline["max"]
    if measured["status"] == "ok":
        assert _positive(measured["value"]) and _positive(measured["ratio"])
        assert measured["ok"] is (measured["value"] < 1)


@pytest.fixture
def report() -> Iterator[ModuleType]:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        yield importlib.import_module("benchlib.report")
    finally:
        sys.path.remove(str(REPO / "scripts"))


def test_docs_table_replaces_only_the_marked_block(tmp_path: Path, report: ModuleType) -> None:
    document = {
        "date": "2030-01-01T00:00:00+00:00",
        "command": "python scripts/bench.py --quick",
        "quick": True,
        "seconds": 1.0,
        "machine": {
            "cpu_count": 2,
            "cpu_model": "cpu",
            "memory_mib": 1024,
            "kernel": "6",
            "python": "3.11",
            "libraries": {"trio": "1"},
            "load_average": [0.1],
        },
        "scenarios": [
            {
                "name": "local_call",
                "unit": "ms",
                "status": "missing",
                "reason": "no runtime",
                "value": None,
                "p99": None,
                "min": None,
                "max": None,
                "ratio": None,
                "target": "p50 < 1 ms",
                "ok": False,
                "baseline": {"name": "socketpair", "value": 0.1, "p99": 0.2, "min": 0.05, "max": 0.3},
            }
        ],
    }
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Bench\n\nintro\n\n{report.BEGIN}\nold\n{report.END}\n\n## Profile\nkept\n")
    report.write_docs(docs, document)
    text = docs.read_text()
    assert text.startswith("# Bench\n\nintro\n\n") and text.endswith("## Profile\nkept\n")
    assert "old" not in text and "| `local_call` | ms | missing: no runtime |" in text
    assert "`python scripts/bench.py --quick`" in text
