"""Metrics of a real node process: the ``metrics`` command, and a Prometheus scrape of ``[metrics] listen``."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.conftest import NodeFactory
from tests.cli.support import FAST_CONFIG

SERVICES = Path(__file__).resolve().parent.parent / "compat" / "services"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed by prometheus-client's own parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_prometheus_scrapes_the_node_and_its_services(nodes: NodeFactory, tmp_path: Path) -> None:
    config = FAST_CONFIG + '\n[metrics]\nlisten = "127.0.0.1:0"\n'
    node = nodes("home", config=config)
    assert node.info["metrics"].startswith("http://127.0.0.1:")
    archive = tmp_path / "counter.tar.gz"
    subprocess.run(
        ["tar", "-czf", str(archive), "--exclude=__pycache__", "counter/"], cwd=SERVICES, check=True
    )
    assert node.ok("install", str(archive))["auto_started"] is True
    for amount in (1, 2, 3):
        node.ok("call", "counter/add", "--params", f'{{"amount": {amount}}}')
    assert node.cli("call", "counter/fails").code == 1

    with urllib.request.urlopen(node.info["metrics"], timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        scraped = samples(response.read().decode())
    service = (("service", "counter"),)
    assert scraped[("p2p_orchestrator_services_installed", ())] == 1
    assert scraped[("p2p_orchestrator_service_running", service)] == 1
    assert scraped[("p2p_orchestrator_service_calls_total", service)] == 4
    assert scraped[("p2p_orchestrator_service_call_errors_total", service)] == 1
    assert scraped[("p2p_orchestrator_service_call_seconds_count", service)] == 4
    assert scraped[("p2p_orchestrator_service_restarts_total", service)] == 0
    assert scraped[("p2p_orchestrator_operations_total", (("operation", "installs"),))] == 1
    own = (("name", "method_add_calls"), ("service", "counter"))
    assert scraped[("p2p_orchestrator_service_counter_total", own)] == 3
    assert scraped[("p2p_orchestrator_service_gauge", (("name", "total"), ("service", "counter")))] == 6
    timer = (("name", "method_add_duration_ms"), ("service", "counter"))
    assert scraped[("p2p_orchestrator_service_timer_milliseconds_count", timer)] == 3
    assert ("p2p_orchestrator_peers", (("state", "connected"),)) in scraped
    assert ("p2p_orchestrator_transfer_bytes_total", (("direction", "received"),)) in scraped

    # the same figures from the command line
    shown = node.ok("metrics")
    assert shown["services"]["counter"]["calls"] == 4
    assert shown["services"]["counter"]["metrics"]["counters"]["method_add_calls"] == 3
    assert node.ok("metrics", "counter")["services"].keys() == {"counter"}
    readable = node.cli("metrics")
    assert readable.code == 0 and "method_add_calls" in readable.stdout

    # anything but GET /metrics is refused, and a bad request does not take the endpoint down
    base = node.info["metrics"].removesuffix("/metrics")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/other", timeout=10)
    assert refused.value.code == 404
    with urllib.request.urlopen(node.info["metrics"], timeout=10) as again:
        assert again.status == 200
