"""The hostile side of the dashboard over HTTP (no browser): tokens, origins, hosts, methods.

The swarm is the browser tests' (module ``conftest``); these requests come from urllib, as a
script or another site's page would send them.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.dashboard.conftest import SERVICE, Fleet

STOP = {"action": "stop", "service": SERVICE}
JSON = {"Content-Type": "application/json"}


def _refused(fleet: Fleet, status: int, code: str, headers: dict[str, str]) -> None:
    got, body = fleet.http("api/actions", method="POST", body=STOP, headers=headers)
    assert (got, body["error"]["code"]) == (status, code), body
    assert fleet.a.ok("info", SERVICE)["state"] == "running"


def test_an_action_without_the_token_or_with_a_wrong_one_is_refused(fleet: Fleet) -> None:
    fleet.a.ok("start", SERVICE)
    _refused(fleet, 401, "token_required", JSON)
    _refused(fleet, 401, "token_required", {**JSON, "Authorization": "Basic " + fleet.token})
    _refused(fleet, 403, "bad_token", {**JSON, "Authorization": "Bearer " + fleet.token[:-1] + "x"})
    _refused(fleet, 403, "bad_token", {**JSON, "Authorization": "Bearer " + fleet.token + "x"})


@pytest.mark.parametrize("key", ["token", "access_token", "authorization"])
def test_the_token_is_never_taken_from_the_url(fleet: Fleet, key: str) -> None:
    query = urllib.parse.urlencode({key: fleet.token})
    got, body = fleet.http(f"api/actions?{query}", method="POST", body=STOP, headers=JSON)
    assert (got, body["error"]["code"]) == (401, "token_required")
    assert fleet.a.ok("info", SERVICE)["state"] == "running"


def test_a_cross_site_request_is_refused_even_with_the_token(fleet: Fleet) -> None:
    auth = {**JSON, "Authorization": "Bearer " + fleet.token}
    _refused(fleet, 403, "cross_site", {**auth, "Origin": "http://evil.example"})
    _refused(fleet, 403, "cross_site", {**auth, "Origin": "null"})
    _refused(fleet, 403, "cross_site", {**auth, "Sec-Fetch-Site": "cross-site"})
    _refused(fleet, 403, "cross_site", {**auth, "Sec-Fetch-Site": "same-site"})
    # what a form on another site can send without a preflight: no JSON
    _refused(
        fleet,
        400,
        "bad_request",
        headers={"Authorization": "Bearer " + fleet.token, "Content-Type": "text/plain"},
    )
    host = urllib.parse.urlsplit(fleet.url).netloc
    same = {**auth, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    got, body = fleet.http("api/token", method="POST", body={}, headers=same)
    assert (got, body) == (200, {"ok": True})


def test_actions_are_post_only_and_another_host_name_is_refused(fleet: Fleet) -> None:
    got, body = fleet.http("api/actions", headers={"Authorization": "Bearer " + fleet.token})
    assert (got, body["error"]["code"]) == (405, "method_not_allowed")
    for path in (
        "api/fleet",
        "api/actions",
        "static/app.js",
    ):  # DNS rebinding: another site's name for 127.0.0.1
        got, body = fleet.http(
            path, headers={"Host": "evil.example:80", "Authorization": "Bearer " + fleet.token}
        )
        assert (got, body["error"]["code"]) == (421, "bad_host"), path


def test_reading_needs_no_token_on_loopback_and_answers_are_locked_down(fleet: Fleet) -> None:
    got, info = fleet.http("api/info")
    assert got == 200 and info["peer_id"] == fleet.a.peer_id and info["read_needs_token"] is False
    got, body = fleet.http("api/nodes/12D3KooWNotAPeerThisNodeKnowsAtAllxxxxxxxxxxxxxxxxx")
    assert (got, body["error"]["code"]) == (404, "not_found")
    got, body = fleet.http("static/../../config.py")
    assert got == 404
    got, body = fleet.http("api/services/no_such_service")
    assert got == 200 and body["nodes"] == []


def test_an_unknown_action_or_a_bad_body_is_refused(fleet: Fleet) -> None:
    auth = {**JSON, "Authorization": "Bearer " + fleet.token}
    for body, code in (
        ({"action": "uninstall", "service": SERVICE}, "unknown_action"),
        ({"action": "stop"}, "bad_request"),
        ({"action": "replicas", "service": SERVICE, "count": -1}, "bad_request"),
        ({"action": "rollout", "service": SERVICE, "targets": ["not a peer"]}, "bad_request"),
        (["stop"], "bad_request"),
    ):
        got, answer = fleet.http("api/actions", method="POST", body=body, headers=auth)
        assert answer["error"]["code"] == code, (body, answer)
        assert got in (400, 404)
    got, answer = fleet.http("api/actions", method="POST", body={"padding": "x" * 70_000}, headers=auth)
    assert (got, answer["error"]["code"]) == (400, "bad_request")  # more than 64 KiB
    got, answer = fleet.http(
        "api/actions", method="POST", body={"action": "stop", "service": "ghost"}, headers=auth
    )
    assert (got, answer["error"]["code"]) == (404, "not_installed")


def test_a_script_with_the_token_acts_without_a_browser(fleet: Fleet) -> None:
    auth = {**JSON, "Authorization": "Bearer " + fleet.token}
    body = {"action": "replicas", "service": "hello", "count": 3}
    got, answer = fleet.http("api/actions", method="POST", body=body, headers=auth)
    assert got == 200 and answer["ok"] is True, answer
    assert answer["result"]["rule"]["count"] == 3
    got, shown = fleet.http("api/services/hello")
    assert got == 200 and shown["replicas"]["rule"]["count"] == 3
    assert fleet.a.peer_id in {entry["peer_id"] for entry in shown["nodes"]}
