"""``keygen`` and ``sign``: a publisher's key and release statements, from the real command, no node."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from p2p_orchestrator.release import Publisher, ReleaseStatement, TrustPolicy, parse_public_key
from tests.cli.support import FAST_CONFIG, run_cli, start_node
from tests.helpers import make_archive

KEY_LINE = re.compile(r"ed25519:[A-Za-z0-9+/]{43}=")


def test_keygen_writes_a_private_key_and_prints_its_public_key(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "publisher.key"
    key_file.parent.mkdir()
    made = run_cli("keygen", "-o", str(key_file))
    assert made.code == 0, str(made)
    assert KEY_LINE.fullmatch(made.stdout.rstrip("\n")) and made.stdout.count("\n") == 1
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().splitlines()[1] == f"public {made.stdout.strip()}"
    as_json = run_cli("keygen", "-o", str(tmp_path / "second.key"), "--json")
    assert as_json.code == 0, str(as_json)
    assert set(as_json.json()) == {"public_key"} and KEY_LINE.fullmatch(as_json.json()["public_key"])
    assert as_json.json()["public_key"] != made.stdout.strip()


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    key_file = tmp_path / "publisher.key"
    assert run_cli("keygen", "-o", str(key_file)).code == 0
    before = key_file.read_bytes()
    again = run_cli("keygen", "-o", str(key_file), "--json")
    assert again.code == 1 and again.stdout == ""
    assert again.stderr.startswith(f"error [key_exists]: {key_file} already exists"), str(again)
    assert key_file.read_bytes() == before
    assert run_cli("keygen").code == 2  # -o is required


def test_sign_writes_a_statement_a_trusting_node_accepts(tmp_path: Path) -> None:
    archive = tmp_path / "web.tar.gz"
    archive.write_bytes(make_archive(tmp_path / "src", "web", "2.0.0"))
    key_file = tmp_path / "publisher.key"
    public = run_cli("keygen", "-o", str(key_file)).stdout.strip()
    output = tmp_path / "web.tar.gz.release"
    before = int(time.time())
    signed = run_cli(
        "sign", str(archive), "--key", str(key_file), "-o", str(output), "--expires-in", "600", "--json"
    )
    assert signed.code == 0, str(signed)
    result = signed.json()
    statement = ReleaseStatement.from_bytes(output.read_bytes())
    assert result == {
        "name": "web",
        "version": "2.0.0",
        "archive_sha256": statement.archive_sha256,
        "archive_size": archive.stat().st_size,
        "publisher_key": public,
        "issued_at": statement.issued_at,
        "expires_at": statement.issued_at + 600,
        "path": str(output),
    }
    assert before <= statement.issued_at <= time.time()
    policy = TrustPolicy((Publisher("ops", parse_public_key(public), ("web",)),), require_signed=True)
    assert policy.verify(statement, now=time.time()).label == "ops"
    policy.check_archive(
        statement,
        name="web",
        version="2.0.0",
        archive_sha256=result["archive_sha256"],
        archive_size=result["archive_size"],
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left

    shown = run_cli("sign", str(archive), "--key", str(key_file), "-o", str(output))
    assert shown.code == 0, str(shown)
    assert "signed   web 2.0.0" in shown.stdout and "expires  never" in shown.stdout
    assert ReleaseStatement.from_bytes(output.read_bytes()).expires_at is None  # re-signing replaces it


def test_sign_refuses_a_bad_archive_and_an_unsafe_key(tmp_path: Path) -> None:
    key_file = tmp_path / "publisher.key"
    assert run_cli("keygen", "-o", str(key_file)).code == 0
    output = tmp_path / "out.release"
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a gzip file")
    bad = run_cli("sign", str(garbage), "--key", str(key_file), "-o", str(output))
    assert bad.code == 1 and bad.stdout == ""
    assert bad.stderr.startswith(f"error [not_gzip]: {garbage} is not a valid service archive"), str(bad)
    assert not output.exists()

    archive = tmp_path / "web.tar.gz"
    archive.write_bytes(make_archive(tmp_path / "src", "web", "2.0.0"))
    key_file.chmod(0o644)
    unsafe = run_cli("sign", str(archive), "--key", str(key_file), "-o", str(output))
    assert unsafe.code == 1 and unsafe.stderr.startswith("error [insecure_key]"), str(unsafe)
    assert f"chmod 600 {key_file}" in unsafe.stderr
    assert not output.exists()

    missing = run_cli("sign", str(archive), "--key", str(tmp_path / "none.key"), "-o", str(output))
    assert missing.code == 1 and missing.stderr.startswith("error [key_unreadable]"), str(missing)
    assert "p2p-orchestrator keygen" in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("sign", "ARCHIVE", "--key", "KEY"),
        ("sign", "ARCHIVE", "-o", "OUT"),
        ("sign", "ARCHIVE", "--key", "KEY", "-o", "OUT", "--expires-in", "0"),
        ("sign", "NO_SUCH_FILE", "--key", "KEY", "-o", "OUT"),
    ],
    ids=["no output", "no key", "expires in 0", "no archive"],
)
def test_sign_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    archive = tmp_path / "web.tar.gz"
    archive.write_bytes(b"x")
    names = {
        "ARCHIVE": str(archive),
        "KEY": str(tmp_path / "k"),
        "OUT": str(tmp_path / "o"),
        "NO_SUCH_FILE": "/no/such",
    }
    result = run_cli(*(names.get(arg, arg) for arg in args))
    assert result.code == 2, str(result)
    assert "Traceback" not in result.stderr


def test_a_node_that_requires_signed_releases_installs_what_sign_made_and_nothing_else(
    tmp_path: Path,
) -> None:
    """keygen, sign, then install on a real node: the statement beside the archive is read by the
    node, an unsigned archive is refused, and only the operator's --allow-unsigned lets it in."""
    key_file = tmp_path / "publisher.key"
    public = run_cli("keygen", "-o", str(key_file)).stdout.strip()
    signed_archive = tmp_path / "web.tar.gz"
    signed_archive.write_bytes(make_archive(tmp_path / "web", "web", "1.0.0"))
    made = run_cli("sign", str(signed_archive), "--key", str(key_file), "-o", f"{signed_archive}.release")
    assert made.code == 0, str(made)
    unsigned = tmp_path / "other.tar.gz"
    unsigned.write_bytes(make_archive(tmp_path / "other", "other", "1.0.0"))
    config = (
        FAST_CONFIG
        + f'\n[security]\nrequire_signed = true\n\n[publishers.ci]\npublic_key = "{public}"\nservices = ["web"]\n'
    )
    node = start_node(tmp_path / "home", config=config)
    try:
        home = node.home
        refused = run_cli("install", str(unsigned), home=home)
        assert refused.code == 1 and refused.stderr.startswith("error [release_required]"), str(refused)
        installed = run_cli("install", str(signed_archive), "--json", home=home)
        assert installed.code == 0, str(installed)
        listed = run_cli("info", "web", "--json", home=home).json()
        assert listed["versions"][0]["signed"] is True
        forced = run_cli("install", str(unsigned), "--allow-unsigned", "--json", home=home)
        assert forced.code == 0 and forced.json()["service_name"] == "other", str(forced)
    finally:
        node.stop()
