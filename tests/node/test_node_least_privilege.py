"""What another node may read: no operator secrets, no paths; forcing a downgrade needs admin."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trio

from p2p_orchestrator import PermissionDenied, ServiceSettings
from p2p_orchestrator.testing import swarm
from tests.helpers import make_archive
from tests.node.support import fast_config

NAME = {"service_name": "example_service"}


async def test_a_reader_sees_no_operator_secret_and_no_path(tmp_path: Path) -> None:
    operator = ServiceSettings(config={"api_token": "hunter2", "db": {"password": "pw", "host": "h"}})
    config = replace(fast_config(), services={"example_service": operator})
    with trio.fail_after(60):
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=config, roles="reader") as nodes:
            target, reader = nodes
            await target.orchestrator.install_service(make_archive(tmp_path / "src"))
            remote = reader.proxy(target.peer_id)
            seen = await remote.call_method("orchestrator/get_service_info", NAME)
            assert seen["configuration"] == {
                "greeting": "Hi",  # the manifest's and config/default.json's own values stay
                "setting2": 42,
                "api_token": "<redacted>",
                "db": {"password": "<redacted>", "host": "<redacted>"},
            }
            for key in ("directory", "data_directory", "log_file"):
                assert seen[key] == "<redacted>", key
            status = await remote.call_method("orchestrator/get_orchestrator_status", {})
            assert status["home"] == status["services_directory"] == "<redacted>"
            # the node's own operator sees everything
            local = await target.rpc.call("orchestrator/get_service_info", NAME)
            assert local["configuration"]["api_token"] == "hunter2" and "directory" in local


async def test_forcing_a_reinstall_or_a_rollback_needs_admin(tmp_path: Path) -> None:
    v1, v2 = (make_archive(tmp_path / v, version=v) for v in ("1.0.0", "1.1.0"))

    def roles(i: int, j: int) -> str:
        return "deployer" if j == 1 else "admin"

    with trio.fail_after(60):
        async with swarm(3, tmp_dir=tmp_path / "swarm", config=fast_config(), roles=roles) as nodes:
            target, deployer, admin = nodes
            await target.orchestrator.install_service(v1)
            await target.orchestrator.install_service(v2)
            by_deployer = deployer.proxy(target.peer_id)
            with pytest.raises(PermissionDenied, match="admin"):
                await by_deployer.call_method("orchestrator/rollback_service", NAME)
            with pytest.raises(PermissionDenied, match="force_reinstall needs the admin"):
                await by_deployer.call_method(
                    "orchestrator/install_service", {"archive_data": v1, "force_reinstall": True}
                )
            # a pushed archive is held to the same rule on the receiving node
            await deployer.orchestrator.install_service(v1)
            pushed = await deployer.orchestrator.distribute_service(
                "example_service", [target.peer_id], force_reinstall=True
            )
            assert "force_reinstall needs the admin role" in pushed["results"][target.peer_id]["error"]
            assert (await target.orchestrator.get_service_info("example_service"))["version"] == "1.1.0"
            rolled = await admin.proxy(target.peer_id).call_method("orchestrator/rollback_service", NAME)
            assert rolled["to_version"] == "1.0.0"
