"""Calls into services, between services, and the errors callers get."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Caller, Orchestrator, PermissionDenied, ServiceCallError, ServiceSettings
from tests.runtime.support import fast_config, pid_of, service_archive

REMOTE = Caller(peer_id="x", permissions=frozenset(), public_only=True, role="reader")
STRANGER = Caller(peer_id="y", permissions=frozenset(), public_only=True)

AWKWARD = """
class Run(BaseService):
    @service_method(public=True)
    async def fails(self):
        raise ValueError("no such widget")

    @service_method(public=True)
    async def unencodable(self):
        return {"when": object()}

    @service_method(public=True)
    async def add(self, a: int, b: int = 0):
        return a + b

    @service_method(public=True)
    async def call(self, method: str, params: dict, peer: str | None = None):
        return await self.proxy.call(method, params, peer=peer)

    async def not_exposed(self):
        return "secret"
"""


@pytest.fixture
async def running(rt: Orchestrator, tmp_path: Path) -> Orchestrator:
    await rt.install_service(service_archive(tmp_path, "example_service"))
    await rt.install_service(service_archive(tmp_path, "awkward", AWKWARD))
    await rt.start_service("example_service")
    await rt.start_service("awkward")
    return rt


async def test_a_local_call_reaches_the_service(running: Orchestrator) -> None:
    answer = await running.rpc.call("example_service/greet", {"name": "Ada"})
    assert answer == {"message": "Hi, Ada!", "motd": "Served by p2p-orchestrator."}
    assert (await running.rpc.call("awkward/add", {"a": 2, "b": 3})) == 5
    stats = await running.rpc.call("example_service/stats", {})  # not public, but we are local
    assert stats["calls"] == 1 and stats["config"]["greeting"] == "Hi"


@pytest.mark.parametrize(
    ("method", "params", "caller", "error", "code"),
    [
        ("example_service/nope", {}, None, ServiceCallError, "unknown_method"),
        ("awkward/not_exposed", {}, None, ServiceCallError, "unknown_method"),
        ("example_service/stats", {}, REMOTE, PermissionDenied, "method_not_public"),
        ("example_service/stats", {}, STRANGER, PermissionDenied, "method_unavailable"),
        ("example_service/greet", {}, STRANGER, PermissionDenied, "method_unavailable"),
        ("example_service/greet", {"nom": "Ada"}, None, ServiceCallError, "bad_params"),
        ("awkward/add", {}, None, ServiceCallError, "bad_params"),
        ("awkward/fails", {}, None, ServiceCallError, "method_failed"),
        ("awkward/unencodable", {}, None, ServiceCallError, "unencodable_result"),
        ("example_service/greet", {"name": object()}, None, ServiceCallError, "unencodable_params"),
        ("stopped_service/greet", {}, None, ServiceCallError, "service_not_running"),
    ],
)
async def test_bad_calls_get_clear_errors_and_the_service_keeps_running(  # noqa: PLR0917
    running: Orchestrator, method: str, params: dict, caller: Caller | None, error: type, code: str
) -> None:
    kwargs = {"caller": caller} if caller else {}
    with pytest.raises(error) as raised:
        await running.rpc.call(method, params, **kwargs)
    assert raised.value.code == code, raised.value
    assert (await running.rpc.call("example_service/greet", {"name": "still"}))["message"] == "Hi, still!"
    assert (await running.rpc.call("awkward/add", {"a": 1})) == 1


async def test_error_messages_name_what_went_wrong(running: Orchestrator) -> None:
    with pytest.raises(ServiceCallError, match=r"awkward/fails raised ValueError: no such widget"):
        await running.rpc.call("awkward/fails", {})
    with pytest.raises(
        ServiceCallError, match=r"exposed: add, call, fails, get_service_info, ping, unencodable"
    ):
        await running.rpc.call("awkward/nope", {})
    with pytest.raises(ServiceCallError, match=r"cannot be sent.*object"):
        await running.rpc.call("awkward/unencodable", {})
    logs = "\n".join(await running.service_logs("awkward"))
    assert "ValueError: no such widget" in logs  # the traceback went to the service's log


async def test_a_service_calls_another_service_and_its_node_through_the_proxy(running: Orchestrator) -> None:
    greeting = await running.rpc.call(
        "awkward/call", {"method": "example_service/greet", "params": {"name": "proxy"}}
    )
    assert greeting["message"] == "Hi, proxy!"
    listing = await running.rpc.call("awkward/call", {"method": "orchestrator/list_services", "params": {}})
    assert listing["total_running"] == 2
    # a proxy call acts with its service's rights: another service's private method, and changing
    # what runs, are refused (a service may restart itself: see below)
    with pytest.raises(PermissionDenied) as private:
        await running.rpc.call("awkward/call", {"method": "example_service/stats", "params": {}})
    assert private.value.code == "method_not_public"
    with pytest.raises(PermissionDenied) as stopping:
        await running.rpc.call(
            "awkward/call",
            {"method": "orchestrator/stop_service", "params": {"service_name": "example_service"}},
        )
    assert stopping.value.code == "permission_denied"
    assert running.is_running("example_service")
    with pytest.raises(ServiceCallError, match="no network layer") as raised:
        await running.rpc.call(
            "awkward/call", {"method": "example_service/greet", "params": {}, "peer": "12D3K"}
        )
    assert raised.value.code == "no_network"
    with pytest.raises(ServiceCallError) as raised:
        await running.rpc.call("awkward/call", {"method": "example_service/nope", "params": {}})
    assert raised.value.code == "unknown_method"


async def test_the_operator_may_give_a_service_more_rights(home: Path, tmp_path: Path) -> None:
    config = fast_config({"awkward": ServiceSettings(may=("deploy",))})
    async with Orchestrator(home, config=config) as orch:
        await orch.install_service(service_archive(tmp_path, "example_service"))
        await orch.install_service(service_archive(tmp_path, "awkward", AWKWARD))
        for name in ("example_service", "awkward"):
            await orch.start_service(name)
        stopped = await orch.rpc.call(
            "awkward/call",
            {"method": "orchestrator/stop_service", "params": {"service_name": "example_service"}},
        )
        assert stopped["success"] is True and not orch.is_running("example_service")


UTILS_USER = """
import utils

class Run(BaseService):
    @service_method(public=True)
    async def which(self):
        import sys
        return {"utils": utils.WHO, "path0": sys.path[0], "others": [p for p in sys.path if "services" in p]}
"""


async def test_two_services_each_import_their_own_module_of_the_same_name(
    rt: Orchestrator, tmp_path: Path
) -> None:
    for name in ("left", "right"):
        files = {"utils.py": f"WHO = {name!r}\n"}
        await rt.install_service(service_archive(tmp_path, name, UTILS_USER, files=files))
        await rt.start_service(name)
    left = await rt.rpc.call("left/which", {})
    right = await rt.rpc.call("right/which", {})
    assert (left["utils"], right["utils"]) == ("left", "right")
    assert left["others"] == [left["path0"]] and "/left/" in left["path0"]
    assert right["others"] == [right["path0"]] and "/right/" in right["path0"]


INTROSPECT = """
class Run(BaseService):
    @service_method()
    async def modules(self):
        return sorted(sys.modules)

    @service_method()
    async def whoami(self):
        import p2p_orchestrator
        return {"version": p2p_orchestrator.__version__, "ppid": os.getppid()}
"""


async def test_the_child_stays_small_and_never_imports_the_network_stack(
    rt: Orchestrator, tmp_path: Path
) -> None:
    await rt.install_service(service_archive(tmp_path, "intro", INTROSPECT))
    await rt.start_service("intro")
    modules = set(await rt.rpc.call("intro/modules", {}))
    assert not {m for m in modules if m.split(".")[0] in ("libp2p", "multiaddr", "sqlite3", "tarfile")}
    assert not {m for m in modules if m.startswith(("p2p_orchestrator.store", "p2p_orchestrator.archive"))}
    # 'from p2p_orchestrator import X' still works in a service: the package loads on first use
    assert rt.supervisor.forks is not None
    # its parent is the node's fork server, or the node itself when the fork server is off
    assert (await rt.rpc.call("intro/whoami", {}))["ppid"] == rt.supervisor.forks.pid


SELF_CONTROL = """
class Run(BaseService):
    @service_method()
    async def restart_me(self):
        return await self.proxy.call("orchestrator/restart_service", {"service_name": self.name})

    @service_method()
    async def stop_me(self):
        return await self.proxy.call("orchestrator/stop_service", {"service_name": self.name})
"""


async def test_a_service_can_restart_and_stop_itself_through_its_proxy(
    rt: Orchestrator, tmp_path: Path
) -> None:
    # The call that asks ends with the process that made it, but what it asked for is carried out.
    await rt.install_service(service_archive(tmp_path, "selfish", SELF_CONTROL))
    await rt.start_service("selfish")
    pid = pid_of(rt, "selfish")
    async with rt.events.subscribe() as events:
        with pytest.raises(ServiceCallError) as raised:
            await rt.rpc.call("selfish/restart_me", {})
        assert raised.value.code == "service_exited"
        with trio.fail_after(10):
            async for event in events:
                if event.type == "service_restarted":
                    break
    assert event.data == {"manual": True}
    assert rt.is_running("selfish") and pid_of(rt, "selfish") != pid

    with pytest.raises(ServiceCallError):
        await rt.rpc.call("selfish/stop_me", {})
    # the self-stop holds the service's lock until it is done: a stop of our own waits for it
    assert (await rt.stop_service("selfish"))["message"] == "Service selfish was not running"
    info = await rt.get_service_info("selfish")
    assert (info["state"], info["desired_state"]) == ("stopped", "stopped")
