"""The node's configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2p_orchestrator import ConfigError, load_config


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
