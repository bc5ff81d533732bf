"""Every orchestrator method, and service methods, called on other nodes of a 5-node swarm."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

from p2p_orchestrator import (
    ServiceCallError,
    ServiceInstallationError,
    ServiceManagementError,
)
from p2p_orchestrator.testing import swarm
from tests.helpers import make_archive
from tests.node.support import SLOW_SERVICE, fast_config, service_archive

ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


async def test_every_orchestrator_method_remotely(tmp_path: Path) -> None:
    v1 = make_archive(tmp_path / "v1", version="1.0.0")
    v2 = make_archive(tmp_path / "v2", version="1.1.0")
    with trio.fail_after(60):
        async with swarm(5, tmp_dir=tmp_path / "swarm", config=fast_config()) as nodes:
            caller, target = nodes[1], nodes[0]
            remote = caller.proxy(target.peer_id)
            name = {"service_name": "example_service"}

            installed = await remote.call_method("orchestrator/install_service", {"archive_data": v1})
            assert installed["success"] is True
            assert installed["service_name"] == "example_service"
            assert installed["archive_hash"] == hashlib.sha256(v1).hexdigest()
            assert installed["auto_started"] is False
            assert isinstance(installed["installed_at"], str)

            listing = await remote.call_method("orchestrator/list_services", {})
            assert listing["total_installed"] == 1
            assert listing["total_running"] == 0
            entry = listing["services"]["example_service"]
            for key in (
                "installed",
                "running",
                "installed_at",
                "archive_hash",
                "manifest",
                "files_count",
                "directory_exists",
            ):
                assert key in entry
            assert entry["manifest"]["version"] == "1.0.0"

            info = await remote.call_method("orchestrator/get_service_info", name)
            assert info["name"] == "example_service"
            assert info["running"] is False
            assert info["archive_hash"] == installed["archive_hash"]

            assert await remote.call_method("orchestrator/export_service", name) == v1

            started = await remote.call_method("orchestrator/start_service", name)
            assert started["success"] is True and started["service_name"] == "example_service"
            assert {"started_at", "message"} <= started.keys()
            assert (await remote.call_method("orchestrator/get_service_info", name))["running"] is True

            # a service method, called from every other node of the swarm
            for other in nodes[1:]:
                answer = await other.proxy(target.peer_id).call_method(
                    "example_service/greet", {"name": other.peer_id[-6:]}
                )
                assert other.peer_id[-6:] in answer["message"]

            restarted = await remote.call_method("orchestrator/restart_service", name)
            assert restarted["success"] is True and "restarted_at" in restarted
            stopped = await remote.call_method("orchestrator/stop_service", name)
            assert stopped["success"] is True and "stopped_at" in stopped

            upgraded = await remote.call_method("orchestrator/install_service", {"archive_data": v2})
            assert upgraded["archive_hash"] == hashlib.sha256(v2).hexdigest()
            rolled = await remote.call_method("orchestrator/rollback_service", name)
            assert rolled["success"] is True
            assert (rolled["from_version"], rolled["to_version"]) == ("1.1.0", "1.0.0")

            status = await remote.call_method("orchestrator/get_orchestrator_status", {})
            assert status["orchestrator_status"] == "running"
            assert status["services_directory"] == "<redacted>"  # no paths for another node
            assert status["statistics"]["installs"] == 2

            removed = await remote.call_method("orchestrator/uninstall_service", name)
            assert removed["success"] is True and "uninstalled_at" in removed
            assert (await remote.call_method("orchestrator/list_services"))["total_installed"] == 0

            # nothing of this touched the caller or the other nodes
            for node in nodes[1:]:
                assert (await node.rpc.call("orchestrator/list_services"))["total_installed"] == 0


async def test_remote_errors_arrive_as_their_own_class(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config()) as nodes:
            remote = nodes[0].proxy(nodes[1].peer_id)
            with pytest.raises(ServiceInstallationError) as installing:
                await remote.call_method("orchestrator/install_service", {"archive_data": b"not a gzip"})
            assert installing.value.code == "not_gzip"
            with pytest.raises(ServiceManagementError) as info:
                await remote.call_method("orchestrator/get_service_info", {"service_name": "nope"})
            assert info.value.code == "not_installed"
            with pytest.raises(ServiceCallError) as bad_params:
                await remote.call_method("orchestrator/list_services", {"extra": 1})
            assert bad_params.value.code == "bad_params"
            with pytest.raises(ServiceCallError) as not_running:
                await remote.call_method("example_service/greet", {})
            assert not_running.value.code == "service_not_running"
            with pytest.raises(ServiceCallError) as bad_method:
                await remote.call_method("not a method", {})
            assert bad_method.value.code == "bad_method"
            with pytest.raises(ServiceCallError) as unencodable:
                await remote.call_method("orchestrator/list_services", {"when": object()})
            assert unencodable.value.code == "unencodable_params"
            # the stream survived every failure
            assert (await remote.call_method("orchestrator/list_services"))["total_installed"] == 0


async def test_calls_share_one_stream_and_run_concurrently(tmp_path: Path) -> None:
    archive = service_archive(tmp_path / "src", "slow_service", SLOW_SERVICE)
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=fast_config()) as nodes:
            server, client = nodes
            await server.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await server.rpc.call("orchestrator/start_service", {"service_name": "slow_service"})
            remote = client.proxy(server.peer_id)
            results: list[object] = []

            async def one(i: int) -> None:
                results.append(await remote.call_method("slow_service/echo", {"value": i}))

            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(one, i)
            assert sorted(r["value"] for r in results) == list(range(100))  # type: ignore[index]
            assert client._pool is not None and client._pool.channel_count() == 1

            # 20 calls that each sleep 0.3 s finish together, not one after the other
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(remote.call_method, "slow_service/sleep", {"seconds": 0.3})
            assert trio.current_time() - start < 3.0


async def test_call_timeout_cancels_the_remote_call(tmp_path: Path) -> None:
    archive = service_archive(tmp_path / "src", "slow_service", SLOW_SERVICE)
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=fast_config()) as nodes:
            server, client = nodes
            await server.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await server.rpc.call("orchestrator/start_service", {"service_name": "slow_service"})
            remote = client.proxy(server.peer_id)
            start = trio.current_time()
            with pytest.raises(ServiceCallError) as timed_out:
                await remote.call_method("slow_service/sleep", {"seconds": 30}, time_limit=0.3)
            assert timed_out.value.code == "call_timeout"
            assert trio.current_time() - start < 2.0
            # the caller's own cancel scope works too, and the stream stays usable
            with trio.move_on_after(0.2):
                await remote.call_method("slow_service/sleep", {"seconds": 30})
            assert (await remote.call_method("slow_service/echo", {"value": 1})) == {"value": 1}


async def test_rpc_call_with_peer_goes_through_the_node(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config()) as nodes:
            status = await nodes[0].rpc.call(
                "orchestrator/get_orchestrator_status", {}, peer=nodes[1].peer_id
            )
            assert status["home"] == "<redacted>"  # answered by another node: no paths
            # a call to the node's own peer ID is a local call
            own = await nodes[0].proxy(nodes[0].peer_id).call_method("orchestrator/get_orchestrator_status")
            assert own["home"] == str(nodes[0].orchestrator.home)


async def test_unreachable_peers_are_reported_clearly(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path / "a", config=fast_config()) as nodes:
            stranger = "12D3KooWEPXcvta82Xd1aMKZUZCWFFgPVsdjn3BqWfBMfJ5QqHSi"
            with pytest.raises(ServiceCallError) as unknown:
                await nodes[0].proxy(stranger).call_method("orchestrator/list_services")
            assert unknown.value.code == "peer_unreachable"
            assert "no known address" in unknown.value.message
            with pytest.raises(ServiceCallError) as malformed:
                await nodes[0].proxy("not-a-peer").call_method("orchestrator/list_services")
            assert malformed.value.code == "bad_peer_id"
            # a peer that has gone away: known address, refused dial
            async with swarm(1, tmp_dir=tmp_path / "b", config=fast_config()) as gone:
                gone_id, gone_addr = gone[0].peer_id, gone[0].listen_addrs[0]
                await nodes[0].connect(gone_addr)
            start = trio.current_time()
            with pytest.raises(ServiceCallError) as refused:
                await nodes[0].proxy(gone_id).call_method("orchestrator/list_services")
            assert refused.value.code in ("peer_unreachable", "channel_closed")
            assert trio.current_time() - start < 5.0


async def test_a_resting_stream_is_closed_and_reopened_on_the_next_call(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config(idle_timeout=0.4)) as nodes:
            client, server = nodes
            remote = client.proxy(server.peer_id)
            await remote.call_method("orchestrator/list_services")
            assert client.stats()["outbound_streams_open"] == 1
            await trio.sleep(1.0)  # rest past half the idle deadline: the client closes its stream first
            assert client.stats()["outbound_streams_open"] == 0
            assert server.stats()["inbound_streams_open"] == 0
            await remote.call_method("orchestrator/list_services")
            assert client.stats()["outbound_streams_open"] == 1


async def test_a_call_begun_late_in_a_rest_is_not_cut_by_the_idle_close(tmp_path: Path) -> None:
    """Regression: the caller's idle deadline stayed armed under a call begun during a rest.

    A call starting shortly before the caller would close its resting stream, and
    running past that moment, had the stream half-closed under it: the callee
    cancelled the call and the caller got ``channel_closed`` (found by the soak,
    on installs; with the defaults, any call over 1 s begun 29 s into a rest).
    """
    archive = service_archive(tmp_path / "src", "slow_service", SLOW_SERVICE)
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=fast_config(idle_timeout=1.0)) as nodes:
            server, client = nodes
            await server.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await server.rpc.call("orchestrator/start_service", {"service_name": "slow_service"})
            remote = client.proxy(server.peer_id)
            for _ in range(3):
                await remote.call_method("slow_service/echo", {"value": 1})
                await trio.sleep(0.4)  # the client would close its stream at 0.5 s of rest
                assert await remote.call_method("slow_service/sleep", {"seconds": 0.5}) == {"slept": 0.5}


async def test_a_call_racing_the_end_of_its_stream_is_retried_not_misreported() -> None:
    """Regression: a call sent after the reader saw the stream end, but before the channel said so,
    failed with ``unencodable_params`` (its parameters were fine) instead of going to a new stream.

    (Found by the network-fault suite: a call to a peer just killed.)
    """
    from types import SimpleNamespace

    from p2p_orchestrator.node.host._stream import NetStream
    from p2p_orchestrator.node.rpc._client import ClientChannel, NotSent

    class Raw:
        muxed_conn = SimpleNamespace(peer_id=SimpleNamespace(to_base58=lambda: "12D3KooWpeer"))

        async def write(self, data: bytes) -> None:
            pass

    channel = ClientChannel(
        NetStream(Raw()),  # type: ignore[arg-type]
        max_in_flight=4,
        write_timeout=1.0,
        read_timeout=1.0,
        idle_close=10.0,
    )
    channel._conn.receive_data(b"")  # the peer's EOF, as the reader takes it in...
    channel._conn.next_event()  # ...and sees the stream closed, before it ends the channel
    assert channel.usable
    with pytest.raises(NotSent):
        await channel.call("orchestrator/list_services", {})
    assert not channel.usable
