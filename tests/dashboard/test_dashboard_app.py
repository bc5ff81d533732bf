"""The routes, called in-process as an ASGI server would (on trio): beyond loopback and on it.

No socket is opened: the app is called in-process, with the guard a remote listen gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette

from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.dashboard.app import GuardSlot, create_app
from p2p_orchestrator.dashboard.fleet import FleetView
from p2p_orchestrator.dashboard.guard import Guard

ME = "12D3KooW" + "M" * 44
TOKEN = "t" * 43


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """GET requests straight into the ASGI app (no socket, no HTTP client library)."""

    def __init__(self, app: Starlette, host: str) -> None:
        self._app = app
        self._host = host

    async def get(self, path: str, *, query: str = "", headers: dict[str, str] | None = None) -> Answer:
        sent = {"host": self._host, **{k.lower(): v for k, v in (headers or {}).items()}}
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self._app(scope, receive, send)
        start = messages[0]
        body = b"".join(m.get("body", b"") for m in messages[1:])
        return Answer(start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body)


class _Rpc:
    async def call(self, method: str, params: dict[str, Any], *, caller: Any, peer: str | None) -> Any:
        return {"services": {}}


def _client(guard: Guard | None, host: str = "dashboard.example:8080") -> Client:
    node: Any = SimpleNamespace(
        peer_id=ME, rpc=_Rpc(), orchestrator=SimpleNamespace(config=OrchestratorConfig()), peers=lambda: []
    )
    app = create_app(node, FleetView(node), GuardSlot(guard))
    return Client(app, host)


async def test_beyond_loopback_the_page_loads_and_its_data_needs_the_token() -> None:
    client = _client(Guard(TOKEN, None))
    page = await client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert (await client.get("/static/app.js")).headers["content-type"].startswith("text/javascript")
    refused = await client.get("/api/fleet")
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "token_required")
    assert (await client.get("/api/fleet", query=f"token={TOKEN}")).status_code == 401
    shown = await client.get("/api/fleet", headers={"Authorization": f"Bearer {TOKEN}"})
    assert shown.status_code == 200 and shown.json()["nodes"][0]["peer_id"] == ME
    assert shown.headers["cache-control"] == "no-store"
    info = (await client.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert info["read_needs_token"] is True


async def test_on_loopback_another_host_gets_nothing_and_unknown_paths_are_json() -> None:
    client = _client(Guard(TOKEN, frozenset({"127.0.0.1:8080"})))
    assert (await client.get("/")).json()["error"]["code"] == "bad_host"  # the client names another host
    local = {"Host": "127.0.0.1:8080"}
    assert (await client.get("/", headers=local)).status_code == 200
    assert (await client.get("/api/fleet", headers=local)).status_code == 200
    missing = await client.get("/static/secret.py", headers=local)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    nowhere = await client.get("/nowhere", headers=local)
    assert (nowhere.status_code, nowhere.json()["error"]["code"]) == (404, "not_found")


async def test_before_the_port_is_bound_a_request_is_answered_starting() -> None:
    answer = await _client(None).get("/api/fleet")
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "starting")
