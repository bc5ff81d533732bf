"""The node's configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator import ConfigError, load_config
from p2p_orchestrator.config import config_from_dict


def test_a_missing_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.store.keep_versions == 3
    assert config.archive.max_members > 0


def test_values_are_read(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[archive]\nmax_compressed_bytes = 1024\n[store]\nkeep_versions = 5\nfsync = false\n"
        "[services.web]\nauto_start = true\n[services.web.config]\nport = 8080\n"
    )
    config = load_config(tmp_path)
    assert config.archive.max_compressed_bytes == 1024
    assert config.store.keep_versions == 5 and config.store.fsync is False
    assert config.service("web").auto_start is True
    assert config.service("web").config == {"port": 8080}
    assert config.service("other").config == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[stor]\n", "unknown key"),
        ("[store]\nkeep_version = 2\n", "keep_version"),
        ("[store]\nkeep_versions = '2'\n", "must be of type int"),
        ("[store]\nkeep_versions = 0\n", "must be positive"),
        ("[store]\nfsync = 1\n", "must be of type bool"),
        ("[services.x]\nauto_start = 'yes'\n", "auto_start"),
        ("not toml = = =", "not valid TOML"),
    ],
)
def test_mistakes_are_refused_with_the_key_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


@pytest.mark.parametrize("target", ["home", "config.toml", "roles.toml"])
async def test_a_home_or_file_others_may_write_is_refused(tmp_path: Path, target: str) -> None:
    from p2p_orchestrator import Orchestrator
    from p2p_orchestrator.config import AccessSettings
    from p2p_orchestrator.node.access import AccessControl

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("[store]\nfsync = false\n")
    (home / "roles.toml").write_text("[roles]\n")
    writable = home if target == "home" else home / target
    writable.chmod(writable.stat().st_mode | 0o002)

    async def open_it() -> None:
        if target == "roles.toml":  # read by the network layer
            AccessControl(AccessSettings(), home)
        else:
            async with Orchestrator(home):
                pass

    with pytest.raises(ConfigError) as refused:
        await open_it()
    assert refused.value.code == "insecure_permissions"
    assert f"chmod go-w {writable}" in refused.value.message


KEY_A = "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
KEY_B = "ed25519:O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
OPS = f'[publishers.ops]\npublic_key = "{KEY_A}"\n'


def test_publishers_and_security_are_read(tmp_path: Path) -> None:
    from p2p_orchestrator.release import Publisher, TrustPolicy, parse_public_key

    (tmp_path / "config.toml").write_text(
        f'[security]\nrequire_signed = true\n[publishers.ops]\npublic_key = "{KEY_A}"\nservices = ["web", "api_*"]\n'
        f'[publishers.db-team]\npublic_key = "{KEY_A}"\nservices = ["db"]\n'
        f'[publishers.ci]\npublic_key = "{KEY_B}"\nservices = ["*"]\n'
    )
    config = load_config(tmp_path)
    assert config.security.require_signed is True
    assert config.publishers == (
        Publisher("ops", parse_public_key(KEY_A), ("web", "api_*")),
        Publisher("db-team", parse_public_key(KEY_A), ("db",)),
        Publisher("ci", parse_public_key(KEY_B), ("*",)),
    )
    assert config.trust_policy() == TrustPolicy(config.publishers, require_signed=True)
    defaults = load_config(tmp_path / "nothing")
    assert defaults.publishers == () and defaults.trust_policy() == TrustPolicy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[security]\nrequire_signed = 'yes'\n", r"\[security\]: require_signed must be of type bool"),
        ("[security]\nrequire_signd = true\n", r"\[security\]: unknown key\(s\) require_signd"),
        ("[publishers]\nops = 1\n", r"\[publishers.ops\] must be a table"),
        (OPS + 'services = ["web"]\nnote = 1\n', r"unknown key\(s\) note"),
        ('[publishers.ops]\nservices = ["web"]\n', r"\[publishers.ops\]: public_key is missing"),
        (
            '[publishers.ops]\npublic_key = "12D3KooW"\nservices = ["web"]\n',
            r"\[publishers.ops\]: public_key: '12D3KooW' is not a publisher public key",
        ),
        (
            f'[publishers.ops]\npublic_key = "{KEY_A[:-4]}"\nservices = ["web"]\n',
            r"publishers.ops\]: public_key",
        ),
        (OPS, r"\[publishers.ops\]: services must be a non-empty list"),
        (OPS + "services = []\n", "services must be a non-empty list"),
        (OPS + 'services = "web"\n', "services must be a non-empty list"),
        (OPS + 'services = ["Web"]\n', "invalid service name 'Web'"),
        (OPS + 'services = ["w b*"]\n', "neither a service name nor a glob"),
        (f'[publishers."1ops"]\npublic_key = "{KEY_A}"\nservices = ["web"]\n', "'1ops' is not a label"),
    ],
)
def test_publisher_and_security_mistakes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as refused:
        load_config(tmp_path)
    assert refused.value.code == "bad_config"


def test_updates_are_read_with_their_window() -> None:
    import datetime

    config = config_from_dict(
        {"updates": {"follow": ["web", "api", "web"], "check_interval": 30, "window": "22:30-02:00"}}
    )
    updates = config.updates
    assert updates.follow == ("web", "api")
    assert updates.check_interval == 30.0
    assert updates.window == (datetime.time(22, 30), datetime.time(2, 0))
    assert updates.in_window(datetime.time(23, 0)) and updates.in_window(datetime.time(1, 59))
    assert not updates.in_window(datetime.time(2, 0)) and not updates.in_window(datetime.time(12, 0))
    day = config_from_dict({"updates": {"window": "02:00-04:00"}}).updates
    assert day.in_window(datetime.time(2, 0)) and not day.in_window(datetime.time(4, 0))
    defaults = config_from_dict({}).updates
    assert defaults.follow == () and defaults.check_interval == 300.0 and defaults.window is None
    assert defaults.in_window(datetime.time(12, 0))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"folow": ["web"]}, r"\[updates\]: unknown key\(s\) folow"),
        ({"follow": "web"}, "follow must be a list of service names"),
        ({"follow": ["Web"]}, "follow: invalid service name 'Web'"),
        ({"follow": [f"s{i}" for i in range(65)]}, "at most 64"),
        ({"check_interval": 0}, "check_interval must be a number of seconds > 0"),
        ({"check_interval": True}, "check_interval must be a number of seconds > 0"),
        ({"window": "2:00-04:00"}, "window must be"),
        ({"window": "02:00-24:00"}, "window must be"),
        ({"window": "02:00"}, "window must be"),
        ({"window": 2}, "window must be"),
        ({"window": "03:00-03:00"}, "is empty"),
    ],
)
def test_updates_mistakes_are_refused(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"updates": table})
