"""Atomic writes never write through a file or link planted at their temporary path."""

from __future__ import annotations

import os
from pathlib import Path

from p2p_orchestrator._files import temporary_path, write_atomically
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
