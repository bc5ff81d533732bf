"""Publisher keys and their files, public key text, and signing an archive."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from p2p_orchestrator.errors import ReleaseError, ServiceInstallationError
from p2p_orchestrator.release import (
    KEY_FILE_HEADER,
    PublisherKey,
    parse_public_key,
    public_key_text,
    sign_archive,
)
from tests.helpers import make_archive


def test_a_saved_key_is_private_and_loads_back(tmp_path: Path) -> None:
    key = PublisherKey.generate()
    path = tmp_path / "publisher.key"
    old_umask = os.umask(0)  # the file is 0600 whatever the umask
    try:
        key.save(path)
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert lines[0] == KEY_FILE_HEADER and lines[1] == f"public {key.public_text}"
    assert PublisherKey.load(path).public_key == key.public_key
    assert [p.name for p in tmp_path.iterdir()] == ["publisher.key"]  # no temporary file left


def test_a_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "publisher.key"
    PublisherKey.generate().save(path)
    before = path.read_bytes()
    with pytest.raises(ReleaseError) as refused:
        PublisherKey.generate().save(path)
    assert refused.value.code == "key_exists" and str(path) in refused.value.message
    assert path.read_bytes() == before
    link = tmp_path / "dangling.key"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ReleaseError, match="already exists"):
        PublisherKey.generate().save(link)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_others_may_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "publisher.key"
    PublisherKey.generate().save(path)
    path.chmod(mode)
    with pytest.raises(ReleaseError) as refused:
        PublisherKey.load(path)
    assert refused.value.code == "insecure_key"
    assert f"chmod 600 {path}" in refused.value.message


def test_missing_and_malformed_key_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError) as missing:
        PublisherKey.load(tmp_path / "none.key")
    assert missing.value.code == "key_unreadable" and "keygen" in missing.value.message
    good = PublisherKey(bytes(range(32))).key_file_text()
    other = PublisherKey(bytes(32)).key_file_text()
    wrong_public = good.replace(good.splitlines()[1], other.splitlines()[1])
    for number, text in enumerate(
        [
            "",
            "hello\n",
            good.rstrip("\n"),
            good + "\n",
            good.replace("seed ", "seed  "),
            wrong_public,
            "é" * 10,
        ]
    ):
        path = tmp_path / f"bad{number}.key"
        path.write_text(text)
        path.chmod(0o600)
        with pytest.raises(ReleaseError) as refused:
            PublisherKey.load(path)
        assert refused.value.code == "bad_key_file", text
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(ReleaseError):
        PublisherKey.load(tmp_path / "dir.key")


def test_the_private_key_never_shows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = PublisherKey(bytes(range(32)))
    seed_text = key.key_file_text().splitlines()[2].removeprefix("seed ")
    logging.getLogger("test").warning("key %s %r", key, key)
    shown = repr(key) + str(key) + f"{key}" + caplog.text
    assert key.public_text in shown
    assert seed_text not in shown and bytes(range(32)).hex() not in shown
    assert not hasattr(key, "__dict__")


def test_public_key_text_round_trips_and_refuses_anything_else() -> None:
    raw = bytes(range(32))
    text = public_key_text(raw)
    assert text == "ed25519:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert parse_public_key(text) == raw and parse_public_key(f"  {text}\n") == raw
    for bad in [
        "",
        text.removeprefix("ed25519:"),
        "ED25519:" + text[8:],
        text[:-2] + "=",
        text[:-2] + "9=",  # padding bits set: a second spelling of the same key
        text + "AAAA",
        "ed25519:" + "é" * 44,
        "ed25519: " + text[8:],
        "rsa:" + text[8:],
    ]:
        with pytest.raises(ReleaseError) as refused:
            parse_public_key(bad)
        assert refused.value.code == "bad_public_key", bad
        assert "keygen" in refused.value.message
    with pytest.raises(ReleaseError):
        public_key_text(b"\x00" * 31)


def test_sign_archive_reads_name_and_version_from_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "web-2.1.0.tar.gz"
    archive.write_bytes(make_archive(tmp_path / "src", "web", "2.1.0"))
    key = PublisherKey.generate()
    statement = sign_archive(archive, key, now=1_800_000_000, expires_in=3600)
    assert (statement.name, statement.version) == ("web", "2.1.0")
    assert statement.archive_size == archive.stat().st_size
    assert statement.archive_sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (statement.issued_at, statement.expires_at) == (1_800_000_000, 1_800_003_600)
    assert statement.publisher_key == key.public_key
    statement.verify_signature()
    assert sign_archive(archive, key, now=5, expires_in=None).expires_at is None


def test_a_bad_archive_is_not_signed(tmp_path: Path) -> None:
    key = PublisherKey.generate()
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive")
    with pytest.raises(ServiceInstallationError) as refused:
        sign_archive(garbage, key, now=0, expires_in=None)
    assert refused.value.code == "not_gzip" and str(garbage) in refused.value.message
    with pytest.raises(ServiceInstallationError) as missing:
        sign_archive(tmp_path / "none.tar.gz", key, now=0, expires_in=None)
    assert missing.value.code == "read_failed"
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(make_archive(tmp_path / "src"))
    with pytest.raises(ReleaseError):
        sign_archive(archive, key, now=0, expires_in=0)
