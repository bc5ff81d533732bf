"""Atomic writes never write through a file or link planted at their temporary path; secret files
are created 0600, never replaced, and refused when others may read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2p_orchestrator._files import (
    ExposedFile,
    NotRegularFile,
    create_private,
    read_private,
    temporary_path,
    write_atomically,
)
from p2p_orchestrator.config import AccessSettings
from p2p_orchestrator.node.access import AccessControl


def test_a_link_planted_at_the_temporary_path_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    target = tmp_path / "peers.json"
    temporary_path(target).symlink_to(victim)
    write_atomically(target, b"new")
    assert victim.read_text() == "untouched"
    assert target.read_bytes() == b"new" and not target.is_symlink()
    assert target.stat().st_mode & 0o777 == 0o600
    assert not temporary_path(target).exists()


def test_the_roles_file_is_written_safely_through_a_planted_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    temporary_path(home / "roles.toml").symlink_to(victim)
    access = AccessControl(AccessSettings(), home)
    access.set_role("12D3KooWEPXcvta82Xd1aMKZUZCWFFgPVsdjn3BqWfBMfJ5QqHSi", "reader")
    assert victim.read_text() == "untouched"
    assert "reader" in (home / "roles.toml").read_text()
    assert os.stat(home / "roles.toml").st_mode & 0o777 == 0o600


def test_a_secret_file_is_created_private_and_never_replaced(tmp_path: Path) -> None:
    os.umask(0o022)
    secret = tmp_path / "secret.key"
    create_private(secret, b"first")
    assert secret.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        create_private(secret, b"second")
    assert read_private(secret, 16) == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]  # no temporary left


def test_a_secret_file_others_may_read_or_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    create_private(secret, b"x" * 100)
    assert read_private(secret, 10) == b"x" * 11  # one past the limit: the caller sees "too large"
    secret.chmod(0o640)
    with pytest.raises(ExposedFile) as refused:
        read_private(secret, 10)
    assert refused.value.mode == 0o640
    with pytest.raises(NotRegularFile):
        read_private(Path("/dev/null"), 10)
