"""What works without a node (init, id, trust, pack, new), and the errors when one is needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from p2p_orchestrator.cli._config_template import CONFIG_TEMPLATE
from p2p_orchestrator.config import OrchestratorConfig, config_from_dict
from tests.cli.support import run_cli
from tests.helpers import EXAMPLE

NEEDS_NODE = [
    ("list",),
    ("status",),
    ("info", "x"),
    ("start", "x"),
    ("peers",),
    ("logs", "x"),
    ("events",),
    ("call", "x/y"),
    ("distribute", "x", "12D3KooWPU5nExxbPjSjsxYdMqYcGWRyi5yQUdHBUqptRKFZuM6q"),
]


@pytest.mark.parametrize("args", NEEDS_NODE, ids=lambda a: a[0])
def test_no_node_running_is_a_one_line_hint(tmp_path: Path, args: tuple[str, ...]) -> None:
    home = tmp_path / "home"
    result = run_cli(*args, home=home)
    assert result.code == 1, str(result)
    assert result.stdout == ""
    assert result.stderr == (
        f"error [node_not_running]: no node is running for home {home}: "
        f"start one with `p2p-orchestrator --home {home} node`\n"
    )


USAGE = [
    ("no_such_command",),
    ("info",),
    ("install", "/no/such/archive.tar.gz"),
    ("call", "not-a-method"),
    ("call", "svc/m", "--params", "{not json"),
    ("call", "svc/m", "--params", "[1, 2]"),
    ("list", "--peer", "not a peer!"),
    ("trust", "12D3KooWPU5nExxbPjSjsxYdMqYcGWRyi5yQUdHBUqptRKFZuM6q", "--role", "emperor"),
    ("distribute", "x"),
    ("new", "Bad-Name"),
    ("new", "orchestrator"),
]


@pytest.mark.parametrize("args", USAGE, ids=" ".join)
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run_cli(*args, home=tmp_path / "home", cwd=tmp_path)
    assert result.code == 2, str(result)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_init_id_and_offline_trust(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli("id", home=home).stderr.startswith("error [no_identity]")
    first = run_cli("init", "--json", home=home)
    assert first.code == 0, str(first)
    init = first.json()
    assert init["config_created"] is True
    assert re.fullmatch(r"12D3KooW\w+", init["peer_id"])
    assert (home / "identity.key").stat().st_mode & 0o777 == 0o600
    again = run_cli("init", "--json", home=home).json()
    assert again["peer_id"] == init["peer_id"] and again["config_created"] is False

    shown = run_cli("id", "--json", home=home).json()
    assert shown == {
        "peer_id": init["peer_id"],
        "home": str(home),
        "running": False,
        "listen_addrs": [],
        "pid": None,
        "control_socket": None,
    }
    other = "12D3KooWPU5nExxbPjSjsxYdMqYcGWRyi5yQUdHBUqptRKFZuM6q"
    trusted = run_cli("trust", other, "--role", "admin", "--json", home=home)
    assert trusted.json() == {"peer_id": other, "role": "admin", "previous_role": None}
    assert other in (home / "roles.toml").read_text()
    removed = run_cli("trust", other, "--role", "none", "--json", home=home).json()
    assert removed == {"peer_id": other, "role": None, "previous_role": "admin"}


def test_config_template_shows_every_default() -> None:
    assert config_from_dict(tomllib.loads(CONFIG_TEMPLATE)) == OrchestratorConfig()
    settings = re.compile(r"^# ([a-z_]+ = .*?)(?:\s+#.*)?$")
    sections = CONFIG_TEMPLATE.split("# Operator settings")[0]  # the [services.*] example is not a default
    uncommented = "\n".join(
        m.group(1) if (m := settings.match(line)) else line
        for line in sections.splitlines()
        if not line.startswith(("# [", '# "'))
    )
    parsed = tomllib.loads(uncommented)
    assert config_from_dict(parsed) == OrchestratorConfig()
    defaults = OrchestratorConfig()
    for section in ("node", "access", "archive", "store", "runtime", "metrics", "dashboard"):
        expected = set(vars(getattr(defaults, section))) - {"roles"}
        assert set(parsed[section]) == expected, section


def test_config_template_shows_how_to_require_signed_releases() -> None:
    examples = CONFIG_TEMPLATE.split("# Signed releases")[1]
    key = "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    uncommented = "\n".join(
        line.removeprefix("# ").replace("ed25519:...", key)
        for line in examples.splitlines()
        if line.startswith(("# [", "# public_key", "# services", "# require_signed"))
    )
    config = config_from_dict(tomllib.loads(uncommented))
    assert config.security.require_signed is True
    assert [(p.label, p.public_text, p.services) for p in config.publishers] == [
        ("example", key, ("example_service", "example_*"))
    ]
    assert set(vars(config.security)) == {"require_signed"}


def test_config_template_shows_how_to_follow_services() -> None:
    import datetime

    examples = CONFIG_TEMPLATE.split("# Follow services")[1]
    uncommented = "\n".join(
        line.removeprefix("# ").split("  #")[0]
        for line in examples.splitlines()
        if line.startswith("# [") or line.startswith(("# follow", "# check_interval", "# window"))
    )
    updates = config_from_dict(tomllib.loads(uncommented)).updates
    assert updates.follow == ("example_service",) and updates.check_interval == 300.0
    assert updates.window == (datetime.time(2, 0), datetime.time(4, 0))
    assert set(vars(updates)) == {"follow", "check_interval", "window"}


def test_pack_is_deterministic(tmp_path: Path) -> None:
    one = run_cli("pack", str(EXAMPLE), "-o", str(tmp_path / "a.tar.gz"), "--json").json()
    two = run_cli("pack", str(EXAMPLE), "-o", str(tmp_path / "b.tar.gz"), "--json").json()
    assert one["archive_hash"] == two["archive_hash"]
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    bad = tmp_path / "no_main"
    bad.mkdir()
    result = run_cli("pack", str(bad), "-o", str(tmp_path / "c.tar.gz"))
    assert result.code == 1 and result.stderr.startswith("error [bad_source]"), str(result)
    assert not (tmp_path / "c.tar.gz").exists()


def test_new_scaffolds_a_service_whose_test_passes(tmp_path: Path) -> None:
    created = run_cli("new", "hello", "--json", cwd=tmp_path)
    assert created.code == 0, str(created)
    files = {Path(f).relative_to(".").as_posix() for f in created.json()["files"]}
    assert files == {"hello/main.py", "hello/manifest.json", "hello/config/default.json", "test_hello.py"}
    assert run_cli("new", "hello", cwd=tmp_path).code == 2  # never overwrites
    packed = run_cli("pack", "hello", "--json", cwd=tmp_path)
    assert packed.code == 0, str(packed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hello.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
