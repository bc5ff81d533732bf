"""The restart policy and its bookkeeping, without processes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from p2p_orchestrator import ConfigError, Orchestrator, ServiceInstallationError, load_config
from p2p_orchestrator.runtime.policy import RestartPolicy, RestartTracker
from tests.helpers import make_archive


def test_defaults() -> None:
    policy = RestartPolicy()
    assert (policy.policy, policy.initial_delay, policy.max_delay) == ("on-failure", 0.5, 30.0)
    assert policy.should_restart(failed=True) and not policy.should_restart(failed=False)
    assert RestartPolicy(policy="always").should_restart(failed=False)
    assert not RestartPolicy(policy="never").should_restart(failed=True)


def test_layers_overlay_key_by_key() -> None:
    policy = RestartPolicy.from_layers(
        {"policy": "always", "max_restarts": 2}, {"max_restarts": 7, "window": 5}
    )
    assert (policy.policy, policy.max_restarts, policy.window) == ("always", 7, 5.0)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"policy": "sometimes"}, "policy must be one of"),
        ({"max_restart": 3}, "unknown key 'max_restart'"),
        ({"initial_delay": "1"}, "must be a number"),
        ({"max_restarts": 1.5}, "whole number"),
        ({"window": 0}, "must be positive"),
        ({"jitter": 1.5}, "fraction"),
        ({"stable_after": True}, "must be a number"),
    ],
)
def test_bad_policies_are_refused_naming_the_key(layer: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestartPolicy.from_layers(layer)


def test_delays_grow_exponentially_up_to_the_ceiling_with_bounded_jitter() -> None:
    policy = RestartPolicy(initial_delay=0.5, multiplier=2, max_delay=4, jitter=0.1)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(8)]
    for n, delay in enumerate(delays):
        base = min(4.0, 0.5 * 2**n)
        assert base * 0.9 <= delay <= min(4.0, base * 1.1)
    assert max(delays) <= 4.0


def test_tracker_gives_up_after_max_restarts_within_the_window() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=3, window=10, jitter=0))
    assert [tracker.next_delay(t) for t in (0, 1, 2)] == [0.5, 1.0, 2.0]
    assert tracker.next_delay(3) is None
    assert tracker.next_delay(10.5) is not None  # the first restart left the window
    assert tracker.total == 4


def test_a_stable_run_resets_the_backoff() -> None:
    tracker = RestartTracker(RestartPolicy(stable_after=5, jitter=0, max_restarts=100))
    tracker.next_delay(0)
    tracker.next_delay(1)
    tracker.ran_for(2)
    assert tracker.next_delay(2) == 2.0
    tracker.ran_for(6)
    assert tracker.next_delay(3) == 0.5


def test_the_operator_configures_the_runtime_and_per_service_overrides(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[runtime]\nstart_timeout = 3\nstop_timeout = 1.5\nmemory_limit_mb = 512\n"
        "[services.web]\nmemory_limit_mb = 0\n[services.web.restart]\npolicy = 'always'\nmax_restarts = 9\n"
    )
    config = load_config(tmp_path)
    assert (config.runtime.start_timeout, config.runtime.stop_timeout) == (3.0, 1.5)
    assert config.runtime.memory_limit_mb == 512 and config.runtime.log_backups == 3
    assert config.service("web").memory_limit_mb == 0
    assert dict(config.service("web").restart) == {"policy": "always", "max_restarts": 9}


def test_the_operator_configures_health_dependencies_reverts_and_wheels(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[runtime]\ndependency_timeout = 5\nrevert_window = 60\nwheel_dir = '/srv/wheels'\n"
        "max_concurrent_calls = 8\n"
        "[services.web]\nauto_revert = false\nrevert_window = 0\n[services.web.health]\ninterval = 2\n"
    )
    config = load_config(tmp_path)
    runtime = config.runtime
    assert (runtime.dependency_timeout, runtime.revert_window, runtime.auto_revert) == (5.0, 60.0, True)
    assert (runtime.wheel_dir, runtime.max_concurrent_calls) == ("/srv/wheels", 8)
    web = config.service("web")
    assert (web.auto_revert, web.revert_window, dict(web.health)) == (False, 0.0, {"interval": 2})


async def test_an_archive_with_a_bad_health_policy_is_refused(orch: Orchestrator, tmp_path: Path) -> None:
    archive = make_archive(tmp_path, manifest={"health": {"timeout": -1}})
    with pytest.raises(ServiceInstallationError, match="timeout must be positive") as raised:
        await orch.install_service(archive)
    assert raised.value.code == "bad_health_policy"
    assert (await orch.list_services())["total_installed"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[runtime]\nstart_timeout = 0\n", "must be positive"),
        ("[runtime]\nstart_timout = 1\n", "start_timout"),
        ("[services.web.restart]\npolicy = 'sometimes'\n", "policy must be one of"),
        ("[services.web]\nmemory_limit_mb = -1\n", "memory_limit_mb"),
        ("[services.web.health]\nfailures = 0\n", "failures must be a whole number"),
        ("[services.web]\nrevert_window = -1\n", "revert_window"),
        ("[services.web]\nauto_revert = 1\n", "auto_revert must be true or false"),
        ("[runtime]\nwheel_dir = 3\n", "wheel_dir must be of type str"),
    ],
)
def test_runtime_mistakes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


async def test_an_archive_with_a_bad_restart_policy_is_refused(orch: Orchestrator, tmp_path: Path) -> None:
    archive = make_archive(tmp_path, manifest={"restart": {"policy": "sometimes"}})
    with pytest.raises(ServiceInstallationError, match="policy must be one of") as raised:
        await orch.install_service(archive)
    assert raised.value.code == "bad_restart_policy"
    assert (await orch.list_services())["total_installed"] == 0
    assert not list((orch.home / "staging").iterdir())
