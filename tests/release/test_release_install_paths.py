"""Every path that installs verifies the release statement, and a refusal changes nothing.

Local installs (bytes, a file with its ``.release`` beside it), pushes, swarms and fetches: a
statement that is not trusted is refused before a byte of the archive is written, the archive
must be the one it names, ``require_signed`` refuses what has none (but the operator's
``allow_unsigned``), and a node never goes back below the highest signed version it installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator import Orchestrator, PermissionDenied, ReleaseError
from p2p_orchestrator.callers import Caller, Permission
from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.release import Publisher, PublisherKey, ReleaseStatement
from tests.distribution.support import transfer_swarm
from tests.helpers import make_archive
from tests.runtime.support import fast_config

NAME = "example_service"
PUBLISHER = PublisherKey.generate()
STRANGER = PublisherKey.generate()


def trusting(
    config: OrchestratorConfig, *, require_signed: bool = False, services: str = "*"
) -> OrchestratorConfig:
    """``config`` with PUBLISHER trusted for ``services`` (and ``require_signed`` as given)."""
    return dataclasses.replace(
        config,
        publishers=(Publisher("ci", PUBLISHER.public_key, (services,)),),
        security=dataclasses.replace(config.security, require_signed=require_signed),
    )


def signed(archive: bytes, key: PublisherKey = PUBLISHER, *, version: str = "1.0.0", **changes: Any) -> bytes:
    """The statement of ``archive`` (the example service at ``version``) signed by ``key``."""
    now = int(time.time())
    fields: dict[str, Any] = {
        "name": NAME,
        "version": version,
        "archive_sha256": hashlib.sha256(archive).hexdigest(),
        "archive_size": len(archive),
        "issued_at": now,
        "expires_at": now + 3600,
        **changes,
    }
    return key.sign(
        fields["name"],
        fields["version"],
        fields["archive_sha256"],
        fields["archive_size"],
        issued_at=fields["issued_at"],
        expires_at=fields["expires_at"],
    ).to_bytes()


async def refused(orch: Orchestrator, code: str, *args: Any, **kwargs: Any) -> ReleaseError:
    """Install, expect ``code``, and check that nothing changed."""
    before = await orch.list_services()
    with pytest.raises(ReleaseError) as caught:
        await orch.install_service(*args, **kwargs)
    assert caught.value.code == code, caught.value
    after = await orch.list_services()
    assert after == before
    assert not any((orch.home / "staging").iterdir())
    return caught.value


async def test_a_trusted_statement_installs_and_is_kept_with_the_version(home: Path, tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    async with Orchestrator(home, config=trusting(fast_config())) as orch:
        await orch.install_service(archive, release=signed(archive))
        info = await orch.get_service_info(NAME)
    assert info["versions"][0]["signed"] is True


async def test_a_statement_beside_the_archive_file_is_used(home: Path, tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    path = tmp_path / "example.tar.gz"
    path.write_bytes(archive)
    (tmp_path / "example.tar.gz.release").write_bytes(signed(archive, STRANGER))
    async with Orchestrator(home, config=trusting(fast_config())) as orch:
        await refused(orch, "unknown_publisher", path)  # it was read: its signer is a stranger
        (tmp_path / "example.tar.gz.release").write_bytes(signed(archive))
        await orch.install_service(path)
        assert (await orch.get_service_info(NAME))["versions"][0]["signed"] is True


@pytest.mark.parametrize(
    ("code", "statement"),
    [
        ("unknown_publisher", lambda archive: signed(archive, STRANGER)),
        ("release_mismatch", lambda archive: signed(archive, archive_sha256="0" * 64)),
        ("release_mismatch", lambda archive: signed(archive, version="9.0.0")),
        ("release_expired", lambda archive: signed(archive, issued_at=1, expires_at=2)),
        ("bad_signature", lambda archive: _tampered(signed(archive))),
        ("bad_release", lambda archive: b"not a statement"),
    ],
)
async def test_each_refusal_of_a_local_install_leaves_the_node_as_it_was(
    home: Path, tmp_path: Path, code: str, statement: Any
) -> None:
    archive = make_archive(tmp_path)
    async with Orchestrator(home, config=trusting(fast_config())) as orch:
        await refused(orch, code, archive, release=statement(archive))


def _tampered(statement: bytes) -> bytes:
    parsed = ReleaseStatement.from_bytes(statement)
    return dataclasses.replace(parsed, archive_size=parsed.archive_size + 1).to_bytes()


async def test_a_publisher_releases_only_the_services_it_is_trusted_for(home: Path, tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    async with Orchestrator(home, config=trusting(fast_config(), services="web-*")) as orch:
        await refused(orch, "publisher_not_allowed", archive, release=signed(archive))


async def test_require_signed_refuses_an_unsigned_archive_but_the_operator_may_allow_it(
    home: Path, tmp_path: Path
) -> None:
    archive = make_archive(tmp_path)
    async with Orchestrator(home, config=trusting(fast_config(), require_signed=True)) as orch:
        await refused(orch, "release_required", archive)
        admin_peer = Caller(peer_id="12D3KooWPeer", permissions=frozenset(Permission), public_only=True)
        with pytest.raises(PermissionDenied, match="allow_unsigned"):
            await orch.rpc.call(
                "orchestrator/install_service",
                {"archive_data": archive, "allow_unsigned": True},
                caller=admin_peer,
            )
        service = Caller(peer_id=None, permissions=frozenset(Permission), public_only=True, service="other")
        with pytest.raises(PermissionDenied, match="service other may not set allow_unsigned"):
            await orch.rpc.call(
                "orchestrator/install_service",
                {"archive_data": archive, "allow_unsigned": True},
                caller=service,
            )
        result = await orch.rpc.call(
            "orchestrator/install_service", {"archive_data": archive, "allow_unsigned": True}
        )
        assert result["service_name"] == NAME
        assert (await orch.get_service_info(NAME))["versions"][0]["signed"] is False


async def test_a_signed_release_older_than_one_the_node_ran_is_refused_across_restarts_and_uninstalls(
    home: Path, tmp_path: Path
) -> None:
    old = make_archive(tmp_path / "v1", version="1.0.0")
    new = make_archive(tmp_path / "v2", version="2.0.0")
    config = trusting(fast_config())
    async with Orchestrator(home, config=config) as orch:
        await orch.install_service(new, release=signed(new, version="2.0.0"))
        await refused(orch, "release_rollback", old, force_reinstall=True, release=signed(old))
    async with Orchestrator(home, config=config) as orch:
        await refused(orch, "release_rollback", old, force_reinstall=True, release=signed(old))
        await orch.uninstall_service(NAME)
        await refused(orch, "release_rollback", old, release=signed(old))
        peer = Caller(peer_id="12D3KooWPeer", permissions=frozenset(Permission), public_only=True)
        with pytest.raises(PermissionDenied, match="allow_rollback"):
            await orch.rpc.call(
                "orchestrator/install_service",
                {"archive_data": old, "release": signed(old), "allow_rollback": True},
                caller=peer,
            )
        await orch.install_service(old, release=signed(old), allow_rollback=True)  # the operator forces it
        assert (await orch.get_service_info(NAME))["version"] == "1.0.0"


# -- the paths between nodes --------------------------------------------------------------------


async def test_distribute_push_and_swarm_carry_the_statement_and_targets_verify_it(tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    async with transfer_swarm(4, tmp_path, configure=trusting) as nodes:
        origin, targets = nodes[0], [node.peer_id for node in nodes[1:]]
        await origin.orchestrator.install_service(archive, release=signed(archive))
        for strategy, chosen in (("push", targets[:1]), ("swarm", targets[1:])):
            result = await origin.orchestrator.distribute_service(NAME, chosen, strategy=strategy)
            assert result["successful_distributions"] == len(chosen), result
        for node in nodes[1:]:
            assert (await node.orchestrator.get_service_info(NAME))["versions"][0]["signed"] is True


async def test_a_target_refuses_an_untrusted_or_missing_statement_before_writing_a_byte(
    tmp_path: Path,
) -> None:
    archive = make_archive(tmp_path)
    async with transfer_swarm(2, tmp_path, configure=lambda c: trusting(c, require_signed=True)) as nodes:
        origin, target = nodes
        await origin.orchestrator.install_service(archive, allow_unsigned=True)
        result = await origin.orchestrator.distribute_service(NAME, [target.peer_id])
        entry = result["results"][target.peer_id]
        assert not entry["success"] and "release_required" in entry["error"]
        assert not any((target.orchestrator.home / "partial").iterdir())
        assert NAME not in (await target.orchestrator.list_services())["services"]


async def test_fetch_brings_the_statement_and_the_fetcher_verifies_it(tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    async with transfer_swarm(2, tmp_path, configure=trusting) as nodes:
        server, fetcher = nodes
        await server.orchestrator.install_service(archive, release=signed(archive))
        result = await fetcher.orchestrator.fetch_service(NAME, server.peer_id)
        assert result["fetched_from"] == server.peer_id
        assert (await fetcher.orchestrator.get_service_info(NAME))["versions"][0]["signed"] is True
