"""The RPC table is read from the API's own signatures: a method's parameters are written once."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import pytest

from p2p_orchestrator.callers import LOCAL_CALLER, Caller, Permission
from p2p_orchestrator.errors import ServiceCallError
from p2p_orchestrator.orchestrator import METHODS, Orchestrator
from p2p_orchestrator.rpc import Param, Rpc, api_method, method_table


class _Api:
    @api_method(Permission.DEPLOY)
    async def move(self, name: str, targets: Sequence[str], *, limit: int | None = None) -> dict[str, Any]:
        return {}

    @api_method(Permission.READ, wire={"source": bytes})
    async def take(self, source: bytes | str, options: dict[str, Any] | None = None) -> None:
        return None

    async def not_in_the_table(self, name: str) -> None:
        return None


def test_parameters_their_types_and_defaults_come_from_the_signature() -> None:
    table = method_table(_Api)
    assert sorted(table) == ["move", "take"]
    assert table["move"].permission is Permission.DEPLOY
    assert table["move"].params == {
        "name": Param((str,)),
        "targets": Param((list,)),
        "limit": Param((int, type(None)), required=False),
    }
    # wire= narrows what a message may carry; the rest still comes from the annotation
    assert table["take"].params == {
        "source": Param((bytes,)),
        "options": Param((dict, type(None)), required=False),
    }


def test_an_annotation_the_wire_cannot_carry_is_refused_when_the_table_is_built() -> None:
    class Broken:
        @api_method(Permission.READ)
        async def read(self, where: object) -> None:
            return None

    with pytest.raises(TypeError, match="cannot carry"):
        method_table(Broken)


def test_wire_must_name_a_parameter_and_the_method_must_be_async() -> None:
    class Misnamed:
        @api_method(Permission.READ, wire={"nothing": bytes})
        async def read(self, where: str) -> None:
            return None

    with pytest.raises(TypeError, match="names no parameter"):
        method_table(Misnamed)
    with pytest.raises(TypeError, match="async def"):
        api_method(Permission.READ)(lambda self: None)


async def test_takes_caller_hands_the_method_who_calls_and_no_message_can_set_it() -> None:
    class Api:
        config = None

        @api_method(Permission.READ, takes_caller=True)
        async def whoami(self, name: str, *, caller: Caller = LOCAL_CALLER) -> str | None:
            return f"{name}:{caller.peer_id}"

        def remote_view(self, method: str, result: Any) -> Any:
            return result

    assert method_table(Api)["whoami"].params == {"name": Param((str,))}
    peer = Caller(peer_id="12D3KooWPeer", permissions=frozenset({Permission.READ}), public_only=True)
    rpc = Rpc(Api())  # type: ignore[arg-type]
    assert await rpc.call("orchestrator/whoami", {"name": "a"}, caller=peer) == "a:12D3KooWPeer"
    with pytest.raises(ServiceCallError, match="unknown parameter"):
        await rpc.call("orchestrator/whoami", {"name": "a", "caller": "me"}, caller=peer)

    class Missing:
        @api_method(Permission.READ, takes_caller=True)
        async def whoami(self, name: str) -> None:
            return None

    with pytest.raises(TypeError, match="takes_caller needs"):
        method_table(Missing)


def test_the_orchestrator_table_is_the_spec_methods_each_matching_its_signature() -> None:
    assert sorted(METHODS) == [
        "abort_rollout",
        "announce_release",
        "distribute_service",
        "export_service",
        "fetch_service",
        "get_events",
        "get_metrics",
        "get_orchestrator_status",
        "get_replicas",
        "get_service_info",
        "get_service_logs",
        "get_updates",
        "install_service",
        "list_releases",
        "list_services",
        "replica_heartbeat",
        "replica_rule",
        "replica_rules",
        "restart_service",
        "rollback_service",
        "rollout_service",
        "rollout_status",
        "set_replicas",
        "start_service",
        "stop_service",
        "uninstall_service",
    ]
    for name, spec in METHODS.items():
        parameters = list(inspect.signature(getattr(Orchestrator, name)).parameters.values())[1:]
        parameters = [p for p in parameters if not (spec.takes_caller and p.name == "caller")]
        assert list(spec.params) == [p.name for p in parameters]
        assert [p.required for p in spec.params.values()] == [p.default is p.empty for p in parameters]
    # a path is for local Python callers: over the wire an archive is bytes, never a file name
    assert METHODS["install_service"].params["archive_data"].types == (bytes,)
    assert METHODS["rollback_service"].permission is Permission.ADMIN
