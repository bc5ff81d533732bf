"""The node refuses to run its py-libp2p fixes on another version of the library, unless told to."""

from __future__ import annotations

import pytest

from p2p_orchestrator.config import ConfigError
from p2p_orchestrator.node.host import _patches


def test_the_installed_library_is_the_one_the_fixes_are_for() -> None:
    assert _patches.libp2p_version() == _patches.PATCHED_FOR


def test_another_version_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_patches, "libp2p_version", lambda: "0.9.0")
    monkeypatch.delenv(_patches.ALLOW_ENV, raising=False)
    with pytest.raises(ConfigError) as refused:
        _patches.install()
    assert "0.9.0" in str(refused.value) and _patches.PATCHED_FOR in str(refused.value)
    assert _patches.ALLOW_ENV in str(refused.value)


def test_an_operator_may_allow_a_version_they_checked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_patches, "libp2p_version", lambda: "0.9.0")
    monkeypatch.setenv(_patches.ALLOW_ENV, "0.9.0")
    _patches.install()
    assert "0.9.0" in caplog.text
