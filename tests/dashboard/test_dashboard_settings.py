"""``[dashboard]`` settings, the token file and the request checks, without a node."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from p2p_orchestrator.config import ConfigError, DashboardSettings, config_from_dict
from p2p_orchestrator.dashboard.errors import DashboardError
from p2p_orchestrator.dashboard.guard import Guard, loopback_hosts
from p2p_orchestrator.dashboard.token import TOKEN_FILE_NAME, load_or_create_token
from tests.cli.support import run_cli
from tests.dashboard.conftest import Fleet


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "localhost:0", "[::1]:8080", "127.0.0.2:9"])
def test_a_loopback_listen_needs_nothing_more(listen: str) -> None:
    settings = config_from_dict({"dashboard": {"listen": listen}}).dashboard
    assert settings == DashboardSettings(listen=listen) and not settings.remote


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.0.2.7:8080", "[::]:8080", "dashboard.example:80"])
def test_another_address_is_refused_without_allow_remote(listen: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"dashboard": {"listen": listen}})
    assert caught.value.code == "dashboard_not_loopback"
    settings = config_from_dict({"dashboard": {"listen": listen, "allow_remote": True}}).dashboard
    assert settings.remote and settings.allow_remote


@pytest.mark.parametrize(
    "table",
    [
        {"listen": 8080},
        {"listen": "8080"},
        {"listen": "127.0.0.1:99999"},
        {"allow_remote": "yes"},
        {"port": 1},
    ],
)
def test_bad_dashboard_settings_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        config_from_dict({"dashboard": table})


def test_a_node_refuses_to_start_with_a_non_loopback_dashboard(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text('[dashboard]\nlisten = "0.0.0.0:0"\n')
    result = run_cli("node", home=home, timeout=30)
    assert result.code == 1, str(result)
    assert result.stderr.strip().endswith("set allow_remote = true to serve it there anyway")
    assert "error [dashboard_not_loopback]" in result.stderr


def test_the_token_is_made_once_private_and_kept(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    path = tmp_path / TOKEN_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32 and load_or_create_token(tmp_path) == token
    shown = run_cli("dashboard", "--token", home=tmp_path)
    assert (shown.code, shown.stdout) == (0, token + "\n"), str(shown)
    os.chmod(path, 0o644)
    with pytest.raises(DashboardError) as caught:
        load_or_create_token(tmp_path)
    assert caught.value.code == "dashboard_token"


def test_the_dashboard_command_says_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[dashboard]\nlisten = "127.0.0.1:8080"\n')
    shown = run_cli("dashboard", "--json", home=tmp_path)
    assert shown.code == 0, str(shown)
    assert shown.json() == {
        "listen": "127.0.0.1:8080",
        "url": "http://127.0.0.1:8080/",
        "allow_remote": False,
    }
    assert not (tmp_path / TOKEN_FILE_NAME).exists()  # only --token makes one


def test_the_dashboard_command_asks_the_running_node_for_the_port_it_bound(fleet: Fleet) -> None:
    shown = fleet.a.ok("dashboard")  # its configuration says listen = "127.0.0.1:0"
    assert shown["listen"] == "127.0.0.1:0"
    assert shown["url"] == fleet.url and fleet.url.startswith("http://127.0.0.1:")
    assert not fleet.url.startswith("http://127.0.0.1:0/")
    assert fleet.a.ok("id")["dashboard"] == fleet.url  # node/id tells every URL the node serves
    assert fleet.b.ok("id")["dashboard"] is None


def test_the_guard_checks_host_token_and_origin() -> None:
    guard = Guard("t" * 43, loopback_hosts(8080))
    ok = {"host": "127.0.0.1:8080", "authorization": "Bearer " + "t" * 43, "content-type": "application/json"}
    guard.check_action("POST", ok)
    guard.check_read({"host": "localhost:8080"})
    for headers, code in (
        ({**ok, "host": "127.0.0.1:8081"}, "bad_host"),
        ({**ok, "authorization": ""}, "token_required"),
        ({**ok, "authorization": "Bearer " + "t" * 42}, "bad_token"),
        ({**ok, "origin": "http://127.0.0.1:8081"}, "cross_site"),
        ({**ok, "sec-fetch-site": "cross-site"}, "cross_site"),
        ({**ok, "content-type": "application/x-www-form-urlencoded"}, "bad_request"),
    ):
        with pytest.raises(DashboardError) as caught:
            guard.check_action("POST", headers)
        assert caught.value.code == code, headers
    remote = Guard("t" * 43, None)
    with pytest.raises(DashboardError) as caught:
        remote.check_read({"host": "dashboard.example"})
    assert caught.value.code == "token_required"
    remote.check_read({"host": "dashboard.example", "authorization": "Bearer " + "t" * 43})
