"""One 3-node swarm and one headless Chromium, shared by every dashboard test (package scope).

``a`` serves the dashboard (``[dashboard] listen = "127.0.0.1:0"``) and names the other two in
``[peers]``; ``b`` and ``c`` bootstrap to it and give it the ``admin`` role in their
``config.toml``, so ``a`` reads and acts on them over the RPC protocol as the wire allows.
Chromium and chromedriver are Debian's (``scripts/ensure-sysdeps.sh`` installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of
from tests.cli.support import FAST_CONFIG, NodeProcess, start_node
from tests.cli.test_cli_peers import wait_connected
from tests.helpers import make_archive

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS_ENV = "DASHBOARD_SCREENSHOTS"
"""Set to 1: the tests write their screenshots to docs/images/dashboard-*.png."""
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SERVICE = "example_service"


@dataclass
class Fleet:
    """The three nodes, the dashboard's URL and token, and archives to use."""

    a: NodeProcess
    b: NodeProcess
    c: NodeProcess
    url: str
    token: str
    archives: Path

    def http(
        self,
        path: str,
        *,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request to the dashboard: its status and decoded JSON body (urllib, no browser)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def _home(root: Path, name: str, config: str) -> tuple[Path, str]:
    home = root / name
    home.mkdir(mode=0o700, parents=True)
    (home / "config.toml").write_text(config)
    return home, peer_id_of(load_or_create_identity(home))


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    home_a = root / "a"
    home_a.mkdir(mode=0o700)
    id_a = peer_id_of(load_or_create_identity(home_a))
    trusting = f'{FAST_CONFIG}\n[access.roles]\n"{id_a}" = "admin"\n'
    home_b, id_b = _home(root, "b", trusting)
    home_c, id_c = _home(root, "c", trusting)
    (home_a / "config.toml").write_text(
        f'{FAST_CONFIG}\n[dashboard]\nlisten = "127.0.0.1:0"\n\n[peers]\nberlin = "{id_b}"\ncairo = "{id_c}"\n'
    )
    archives = root / "archives"
    archives.mkdir()
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        (archives / f"{SERVICE}-{version}.tar.gz").write_bytes(make_archive(root / "src", SERVICE, version))
    (archives / "hello.tar.gz").write_bytes(make_archive(root / "src", "hello", "0.3.0"))
    started: list[NodeProcess] = []

    def start(home: Path, *extra: str) -> NodeProcess:
        node = start_node(home, *extra)
        started.append(node)  # list.append is atomic: the pool's threads may both add
        return node

    def install(node: NodeProcess, *names: str) -> None:
        for name in names:
            node.ok("install", str(archives / name))

    try:
        # b and c start, and the three install, side by side: the swarm is ready in half the time
        with ThreadPoolExecutor(max_workers=3) as pool:
            a = start(home_a)
            installing = pool.submit(install, a, f"{SERVICE}-1.0.0.tar.gz", "hello.tar.gz")
            b, c = pool.map(lambda home: start(home, "--bootstrap", a.address), (home_b, home_c))
            pool.submit(install, b, f"{SERVICE}-1.0.0.tar.gz").result()
            pool.submit(install, c, f"{SERVICE}-1.1.0.tar.gz").result()
            installing.result()
        for peer in (id_b, id_c):
            wait_connected(a, peer)
        token = a.ok("dashboard", "--token")["token"]
        yield Fleet(a, b, c, str(a.info["dashboard"]), token, archives)
    finally:
        for node in started:
            node.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by chromedriver (skipped where Debian's packages are missing, but not in CI)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        missing = f"{CHROMIUM} and {CHROMEDRIVER} are needed: run scripts/ensure-sysdeps.sh as root"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,860")
    options.add_argument("--force-prefers-reduced-motion")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, CSP violations
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """What the page logged as errors since the last call (a refused action's 401 is expected)."""
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE" and "status of 40" not in e["message"]]


def screenshot(driver: Any, name: str, *, height: int | None = None) -> None:
    """With DASHBOARD_SCREENSHOTS=1, save what the browser shows as docs/images/dashboard-NAME.png.

    ``height``: taller than the window, for a long page (the window comes back to its size).
    """
    if os.environ.get(SCREENSHOTS_ENV) != "1":
        return
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    driver.execute_script("document.getElementById('toast').className = ''")  # no leftover notice
    size = driver.get_window_size()
    if height is not None:
        driver.set_window_size(size["width"], height)
    target = DOCS_IMAGES / f"dashboard-{name}.png"
    try:
        driver.save_screenshot(str(target.with_suffix(".tmp.png")))
    finally:
        driver.set_window_size(size["width"], size["height"])
    shutil.move(target.with_suffix(".tmp.png"), target)
