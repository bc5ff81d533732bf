"""The dashboard in a real browser (headless Chromium), over a 3-node swarm of real node processes.

The checks share one swarm and one browser (``conftest.py``), in the order an operator would
go: the fleet, a node, a service stopped from the command line, actions without and with the
token, a distribution, the events.  Every wait is a condition with a deadline.
"""

from __future__ import annotations

import time
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboard.conftest import SERVICE, Fleet, console_errors, screenshot


def _open(driver: Any, fleet: Fleet, fragment: str) -> None:
    """Go to a page (a new fragment: no reload) and wait until it is drawn."""
    driver.get(f"{fleet.url}#/{fragment}")
    _until(driver, lambda d: d.find_element(By.ID, "view").get_attribute("data-route") == f"#/{fragment}", 15)


def _until(driver: Any, condition: Any, timeout: float) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(Exception,)).until(
        condition
    )


def _click(driver: Any, css: str, timeout: float = 10) -> None:
    """Click the element ``css`` names, finding it again if the page redrew it meanwhile (stale)."""

    def click(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, css).click()
        return True

    _until(driver, click, timeout)


def _text(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def _state(driver: Any, service: str) -> str:
    return _text(driver, f'#services tr[data-service="{service}"] .state')


def test_the_fleet_page_lists_the_three_nodes_with_their_versions(fleet: Fleet, browser: Any) -> None:
    _open(browser, fleet, "")
    rows = {node.peer_id: f'#fleet tr[data-peer="{node.peer_id}"]' for node in (fleet.a, fleet.b, fleet.c)}

    def versions(driver: Any) -> dict[str, str] | None:
        found = {}
        for peer, row in rows.items():
            chip = driver.find_element(By.CSS_SELECTOR, f'{row} a.chip[data-service="{SERVICE}"]')
            found[peer] = chip.get_attribute("data-version")
        return found if all(found.values()) else None

    shown = _until(browser, versions, 15)
    assert shown == {fleet.a.peer_id: "1.0.0", fleet.b.peer_id: "1.0.0", fleet.c.peer_id: "1.1.0"}
    assert len(browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")) == 3
    assert "berlin" in _text(browser, rows[fleet.b.peer_id]) and "cairo" in _text(
        browser, rows[fleet.c.peer_id]
    )
    short = f"{fleet.c.peer_id[:2]}*{fleet.c.peer_id[-6:]}"  # libp2p's short form
    assert short in _text(browser, rows[fleet.c.peer_id])
    assert "admin" not in _text(browser, rows[fleet.b.peer_id])  # b's role *here* is none: a trusts nobody
    screenshot(browser, "fleet")

    _open(browser, fleet, f"service/{SERVICE}")
    _until(
        browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#view table tbody tr[data-peer]")) == 3, 15
    )
    assert "1.0.0, 1.1.0" in _text(browser, "#view .sub")
    screenshot(browser, "service", height=1300)
    assert console_errors(browser) == []


def test_a_service_stopped_from_the_cli_shows_stopped_within_2_s_without_a_reload(
    fleet: Fleet, browser: Any
) -> None:
    _open(browser, fleet, f"node/{fleet.a.peer_id}")
    _until(browser, lambda d: _state(d, SERVICE) == "running", 15)
    browser.execute_script("window.notReloaded = true")
    _click(browser, f'#services tr[data-service="{SERVICE}"] button.log-toggle')
    _until(browser, lambda d: _text(d, "#logs") not in ("", "…"), 10)  # its last lines, or that it has none
    screenshot(browser, "node")

    fleet.a.ok("stop", SERVICE)
    stopped_at = time.monotonic()
    _until(browser, lambda d: _state(d, SERVICE) == "stopped", 2.0)
    assert time.monotonic() - stopped_at < 2.0
    assert browser.execute_script("return window.notReloaded") is True
    assert console_errors(browser) == []


def test_an_action_is_refused_without_the_token_and_done_with_it(fleet: Fleet, browser: Any) -> None:
    if fleet.a.ok("info", SERVICE)["state"] != "stopped":  # run alone, not after the test above
        fleet.a.ok("stop", SERVICE)
    _open(browser, fleet, f"node/{fleet.a.peer_id}")
    browser.execute_script("sessionStorage.clear()")  # no token in this tab
    browser.refresh()
    _until(browser, lambda d: d.find_element(By.ID, "view").get_attribute("data-page") == "node", 15)
    _until(browser, lambda d: _state(d, SERVICE) == "stopped", 15)
    start = f'#services tr[data-service="{SERVICE}"] button[data-action="start"]'

    _click(browser, start)
    _until(browser, lambda d: "token_required" in _text(d, "#toast"), 10)
    assert fleet.a.ok("info", SERVICE)["state"] == "stopped"

    panel = browser.find_element(By.ID, "token-panel")
    _until(browser, lambda d: panel.is_displayed(), 5)  # a refused action opens the token panel
    field = browser.find_element(By.ID, "token-input")
    field.send_keys("not-the-token-" + "x" * 30)
    _click(browser, "#token-form button[type=submit]")
    _until(browser, lambda d: "bad_token" in _text(d, "#toast"), 10)

    field.clear()
    field.send_keys(fleet.token)
    _click(browser, "#token-form button[type=submit]")
    _until(browser, lambda d: "Token accepted" in _text(d, "#toast"), 10)
    assert fleet.token not in browser.current_url

    _until(browser, lambda d: d.find_element(By.CSS_SELECTOR, start).is_enabled(), 5)
    _click(browser, start)
    _until(browser, lambda d: _state(d, SERVICE) == "running", 15)
    assert fleet.a.ok("info", SERVICE)["state"] == "running"

    # on another node, through the RPC protocol: b gives a the admin role
    _open(browser, fleet, f"node/{fleet.b.peer_id}")
    _until(browser, lambda d: _state(d, SERVICE) == "running", 15)
    _click(browser, f'#services tr[data-service="{SERVICE}"] button[data-action="stop"]')
    _until(browser, lambda d: _state(d, SERVICE) == "stopped", 15)
    assert fleet.b.ok("info", SERVICE)["state"] == "stopped"
    assert console_errors(browser) == []


def test_a_distribution_shows_its_progress(fleet: Fleet, browser: Any) -> None:
    _open(browser, fleet, "operations")
    fleet.a.ok("distribute", "hello", fleet.b.peer_id, fleet.c.peer_id, "--start")
    card = '.distribution[data-service="hello"]'

    def done(driver: Any) -> bool:
        element = driver.find_element(By.CSS_SELECTOR, card)
        return element.get_attribute("data-done") == element.get_attribute("data-total") == "2"

    _until(browser, done, 10)
    assert "2/2 node(s)" in _text(browser, f"{card} .progress-text")
    assert len(browser.find_elements(By.CSS_SELECTOR, f"{card} .targets .bar.done")) == 2
    assert _text(browser, f"{card} .badge") == "succeeded"

    _open(browser, fleet, "events")
    _until(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#events li[data-type="service_distributed"]'), 10
    )
    progress = browser.find_elements(By.CSS_SELECTOR, '#events li[data-type="distribution_progress"]')
    assert any("1/2 node(s)" in item.text for item in progress)  # each target's end, as it happened
    fleet.a.ok("restart", "hello")  # a new event arrives without a reload
    _until(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#events li[data-type="service_restarted"]'), 5
    )
    screenshot(browser, "events")
    assert console_errors(browser) == []


def test_a_rollout_started_from_the_service_page_shows_wave_by_wave(fleet: Fleet, browser: Any) -> None:
    fleet.a.ok("install", str(fleet.archives / f"{SERVICE}-1.2.0.tar.gz"))
    _open(browser, fleet, f"service/{SERVICE}")
    browser.execute_script(f"sessionStorage.setItem('p2p-orchestrator-dashboard-token', {fleet.token!r})")
    browser.refresh()
    _until(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#view input[type=checkbox]:checked")) == 2,
        15,
    )
    browser.execute_script(  # in one go: the page may redraw between two WebDriver steps
        "document.querySelector('input[name=health_wait]').value = '0.5';"
        "document.querySelector('button[data-action=rollout]').click();"
    )
    _until(browser, lambda d: "rollout example_service: done" in _text(d, "#toast"), 10)

    _open(browser, fleet, "operations")
    card = f'.rollout[data-service="{SERVICE}"]'
    _until(browser, lambda d: _text(d, f"{card} .badge") == "succeeded", 30)
    waves = browser.find_elements(By.CSS_SELECTOR, f"{card} .wave")
    assert [wave.text.split()[0] for wave in waves] == ["canary", "wave"]
    assert len(browser.find_elements(By.CSS_SELECTOR, f"{card} .wave .chip.healthy")) == 2
    for node in (fleet.b, fleet.c):
        assert node.ok("info", SERVICE)["version"] == "1.2.0"
    screenshot(browser, "operations")
    assert console_errors(browser) == []


def test_the_page_is_readable_on_a_phone(fleet: Fleet, browser: Any) -> None:
    browser.set_window_size(390, 844)
    try:
        _open(browser, fleet, f"node/{fleet.a.peer_id}")
        _until(browser, lambda d: _state(d, SERVICE) == "running", 15)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the page is {width} px wide on a 390 px screen"
        screenshot(browser, "phone")
    finally:
        browser.set_window_size(1280, 860)
    assert console_errors(browser) == []
