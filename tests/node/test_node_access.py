"""Role enforcement: each role x each method, unknown peers, ``unknown_peers = "none"``, set_role.

Every refused call must raise ``PermissionDenied`` and change nothing: the
target's ``list_services`` and a digest of its services directory are compared
before and after.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator import OrchestratorError, PermissionDenied
from p2p_orchestrator.callers import Permission
from p2p_orchestrator.config import AccessSettings, ConfigError
from p2p_orchestrator.node import Node
from p2p_orchestrator.node.access import ROLES_FILE_NAME, AccessControl, Role
from p2p_orchestrator.orchestrator import METHODS
from p2p_orchestrator.testing import swarm
from tests.helpers import make_archive, tree_digest
from tests.node.support import fast_config

ROLE_OF_NODE = {1: "admin", 2: "deployer", 3: "reader", 4: None}
ALLOWED = {
    "admin": {Permission.READ, Permission.DEPLOY, Permission.ADMIN},
    "deployer": {Permission.READ, Permission.DEPLOY},
    "reader": {Permission.READ},
    None: set(),
}
NAME = {"service_name": "example_service"}
GHOST = {"service_name": "ghost_service"}


STABLE = ("installed", "running", "installed_at", "archive_hash", "version", "desired_state", "state", "pid")
"""What a refused call could change in ``list_services`` (not clocks such as uptime or health checks)."""


async def snapshot(node: Node) -> tuple[Any, str]:
    listing = await node.rpc.call("orchestrator/list_services")
    services = {name: {key: entry.get(key) for key in STABLE} for name, entry in listing["services"].items()}
    return services, tree_digest(node.orchestrator.home / "services")


def effective_params(method: str, v3: bytes) -> dict[str, Any]:
    """Parameters that would really change the target if the call were allowed."""
    if method == "install_service":
        return {"archive_data": v3}
    return dict(NAME) if "service_name" in METHODS[method].params else {}


def harmless_params(method: str, caller: str) -> dict[str, Any]:
    """Parameters that pass the permission check, then fail without changing anything."""
    if method == "install_service":
        return {"archive_data": b"not an archive"}
    if method == "distribute_service":
        return {**GHOST, "target_nodes": []}
    if method == "fetch_service":  # the ghost is fetched from the caller, which has none
        return {**GHOST, "from_peer": caller}
    if method == "announce_release":  # read, then refused: this node follows nothing anyway
        return {"release": b"not a release statement"}
    if method == "rollout_service":  # planned, then refused: the ghost is not installed here
        return {**GHOST, "targets": [caller]}
    if method == "abort_rollout":
        return {"rollout_id": "r00000000"}
    if method == "set_replicas":  # no count: refused before any rule is made
        return dict(GHOST)
    if method == "replica_rule":
        return {"rule": {}}
    if method == "replica_rules":
        return {"services": []}
    if method == "replica_heartbeat":
        return {"beat": {}}
    if METHODS[method].permission is Permission.DEPLOY or method == "rollback_service":
        return dict(GHOST)
    return dict(NAME) if "service_name" in METHODS[method].params else {}


async def allowed_outcome(call: Awaitable[Any]) -> str:
    """``"ok"``, or the code of the error the call raised (``permission_denied`` if refused)."""
    try:
        await call
    except OrchestratorError as exc:
        return exc.code
    return "ok"


async def test_each_role_and_each_method(tmp_path: Path) -> None:
    v1, v2, v3 = (make_archive(tmp_path / v, version=v) for v in ("1.0.0", "1.1.0", "1.2.0"))
    with trio.fail_after(60):
        async with swarm(
            5,
            tmp_dir=tmp_path / "swarm",
            config=fast_config(),
            roles=lambda i, j: ROLE_OF_NODE[j] if i == 0 else "admin",
        ) as nodes:
            target = nodes[0]
            for archive in (v1, v2):
                await target.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await target.rpc.call("orchestrator/start_service", NAME)
            before = await snapshot(target)

            for index, role in ROLE_OF_NODE.items():
                remote = nodes[index].proxy(target.peer_id)
                for method, spec in sorted(METHODS.items()):
                    path = f"orchestrator/{method}"
                    if spec.permission in ALLOWED[role]:
                        outcome = await allowed_outcome(
                            remote.call_method(path, harmless_params(method, nodes[index].peer_id))
                        )
                        harmless = (
                            "ok",
                            "not_installed",
                            "not_gzip",
                            "bad_release",
                            "rollout_not_found",
                            "bad_rule",
                        )
                        assert outcome in (*harmless, "bad_params" if method == "set_replicas" else "ok"), (
                            role,
                            method,
                            outcome,
                        )
                    else:
                        with pytest.raises(PermissionDenied) as refused:
                            await remote.call_method(path, effective_params(method, v3))
                        assert refused.value.code == "permission_denied"
                        assert await snapshot(target) == before, f"{role} changed the node with {method}"

                # service methods: public ones for every peer with a role, those marked
                # requires_auth=False for peers without one too, others for nobody remote
                assert (await remote.call_method("example_service/example_method", {}))["message"]
                if role is None:
                    with pytest.raises(PermissionDenied) as unauthenticated:
                        await remote.call_method("example_service/greet", {"name": "x"})
                    assert unauthenticated.value.code == "method_unavailable"
                else:
                    greeting = await remote.call_method("example_service/greet", {"name": "x"})
                    assert "x" in greeting["message"]
                with pytest.raises(PermissionDenied) as private:
                    await remote.call_method("example_service/stats", {})
                assert private.value.code == ("method_not_public" if role else "method_unavailable")

            assert await snapshot(target) == before
            # the local caller may do all of it
            assert (await target.rpc.call("example_service/stats"))["calls"] >= 4

            # and an allowed deployer really changes things
            deployer = nodes[2].proxy(target.peer_id)
            upgraded = await deployer.call_method("orchestrator/install_service", {"archive_data": v3})
            assert upgraded["service_name"] == "example_service"
            await deployer.call_method("orchestrator/stop_service", NAME)
            assert (await target.rpc.call("orchestrator/get_service_info", NAME))["version"] == "1.2.0"


async def test_unknown_peers_none_may_call_nothing(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "src")
    with trio.fail_after(30):
        async with swarm(
            2, tmp_dir=tmp_path / "swarm", config=fast_config(), roles=None, unknown_peers="none"
        ) as nodes:
            target, stranger = nodes
            await target.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await target.rpc.call("orchestrator/start_service", NAME)
            before = await snapshot(target)
            remote = stranger.proxy(target.peer_id)
            for path, params in [
                ("orchestrator/list_services", {}),
                ("orchestrator/get_orchestrator_status", {}),
                ("orchestrator/uninstall_service", NAME),
                ("example_service/greet", {"name": "x"}),
                ("example_service/example_method", {}),
            ]:
                with pytest.raises(PermissionDenied):
                    await remote.call_method(path, params)
            assert await snapshot(target) == before

            # set_role applies at once, to the stream already open, and persists
            await target.set_role(stranger.peer_id, "reader")
            assert (await remote.call_method("orchestrator/list_services"))["total_installed"] == 1
            with pytest.raises(PermissionDenied):
                await remote.call_method("orchestrator/uninstall_service", NAME)
            roles_file = target.orchestrator.home / ROLES_FILE_NAME
            assert roles_file.stat().st_mode & 0o777 == 0o600
            assert stranger.peer_id in roles_file.read_text()

            await target.set_role(stranger.peer_id, None)
            with pytest.raises(PermissionDenied):
                await remote.call_method("orchestrator/list_services")


async def test_unknown_peers_public_may_call_methods_open_to_them_only(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "src")
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=fast_config(), roles=None) as nodes:
            target, stranger = nodes
            await target.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await target.rpc.call("orchestrator/start_service", NAME)
            remote = stranger.proxy(target.peer_id)
            assert (await remote.call_method("example_service/example_method"))["message"]
            with pytest.raises(PermissionDenied) as unauthenticated:  # public, but requires_auth
                await remote.call_method("example_service/greet", {"name": "x"})
            assert unauthenticated.value.code == "method_unavailable"
            with pytest.raises(PermissionDenied):
                await remote.call_method("orchestrator/list_services")
            with pytest.raises(PermissionDenied):
                await remote.call_method("example_service/stats")


def test_roles_file_round_trip_and_config_precedence(tmp_path: Path) -> None:
    fixed = "12D3KooWEPXcvta82Xd1aMKZUZCWFFgPVsdjn3BqWfBMfJ5QqHSi"
    other = "12D3KooWATMwzBWfw7TnMxC2CGMjjC2CbLximuQnUvexMVDhYkdM"
    access = AccessControl(AccessSettings(roles={fixed: "admin"}), tmp_path)
    access.set_role(other, "deployer")
    reloaded = AccessControl(AccessSettings(roles={fixed: "admin"}), tmp_path)
    assert reloaded.role_of(other) is Role.DEPLOYER
    assert reloaded.role_of(fixed) is Role.ADMIN
    caller = reloaded.caller_for(other)
    assert caller is not None and caller.permissions == {Permission.DEPLOY, Permission.READ}
    assert caller.public_only and caller.peer_id == other
    with pytest.raises(ConfigError) as fixed_role:
        reloaded.set_role(fixed, "reader")
    assert fixed_role.value.code == "role_fixed_in_config"
    with pytest.raises(ConfigError) as bad_role:
        reloaded.set_role(other, "root")
    assert bad_role.value.code == "bad_role"
    with pytest.raises(ConfigError):
        reloaded.set_role("not a peer", "reader")
    (tmp_path / ROLES_FILE_NAME).write_text('[roles]\n"x" = "god"\n')
    with pytest.raises(ConfigError):
        AccessControl(fast_config().access, tmp_path)
