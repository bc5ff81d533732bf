"""TrustPolicy: every refusal, in its order, with a message that says what to do."""

from __future__ import annotations

import dataclasses

import pytest

from p2p_orchestrator.errors import ReleaseError
from p2p_orchestrator.release import MAX_CLOCK_SKEW, Publisher, PublisherKey, ReleaseStatement, TrustPolicy

KEY = PublisherKey(bytes(range(32)))
OTHER = PublisherKey(bytes(range(1, 33)))
SHA = "ab" * 32
NOW = 1_800_000_000
STATEMENT = KEY.sign("web", "2.0.0", SHA, 4096, issued_at=NOW - 60, expires_at=NOW + 3600)
OPS = Publisher("ops", KEY.public_key, ("web", "api_*"))
POLICY = TrustPolicy((OPS,))


def refused(code: str, policy: TrustPolicy, statement: ReleaseStatement, now: float = NOW) -> str:
    with pytest.raises(ReleaseError) as caught:
        policy.verify(statement, now=now)
    assert caught.value.code == code, caught.value
    return caught.value.message


def test_a_trusted_publisher_of_the_service_is_returned() -> None:
    assert POLICY.verify(STATEMENT, now=NOW) is OPS
    assert repr(OPS) == f"Publisher(label='ops', public_key='{KEY.public_text}', services=('web', 'api_*'))"
    api = KEY.sign("api_gateway", "1.0.0", SHA, 1, issued_at=NOW, expires_at=None)
    assert POLICY.verify(api, now=NOW + 10**9) is OPS  # never expires


def test_a_bad_signature_is_refused_first() -> None:
    forged = dataclasses.replace(STATEMENT, name="api_x", expires_at=NOW - 1)
    message = refused("bad_signature", TrustPolicy(), forged)
    assert "api_x 2.0.0" in message and "altered" in message


def test_an_unknown_publisher_is_named_with_the_fix() -> None:
    statement = OTHER.sign("web", "2.0.0", SHA, 4096, issued_at=NOW, expires_at=None)
    message = refused("unknown_publisher", POLICY, statement)
    assert message == (
        f"release of web 2.0.0 is signed by {OTHER.public_text}, which no [publishers.*] entry lists; "
        "add it to config.toml or ask for a release signed by a trusted publisher"
    )


def test_a_publisher_releases_only_its_services() -> None:
    statement = KEY.sign("db", "1.0.0", SHA, 1, issued_at=NOW, expires_at=None)
    message = refused("publisher_not_allowed", POLICY, statement)
    assert "[publishers.ops] services = ['web', 'api_*']" in message and "add db" in message
    assert not OPS.may_release("api") and OPS.may_release("api_v2") and not OPS.may_release("webx")


def test_one_key_under_two_labels_may_release_the_union() -> None:
    policy = TrustPolicy((OPS, Publisher("db_team", KEY.public_key, ("db",))))
    statement = KEY.sign("db", "1.0.0", SHA, 1, issued_at=NOW, expires_at=None)
    assert policy.verify(statement, now=NOW).label == "db_team"
    assert policy.verify(STATEMENT, now=NOW).label == "ops"


def test_an_expired_release_is_refused_after_the_publisher_checks() -> None:
    expires = STATEMENT.expires_at
    assert expires is not None
    assert POLICY.verify(STATEMENT, now=expires - 0.5) is OPS
    message = refused("release_expired", POLICY, STATEMENT, now=expires)
    assert "expired at 2027-01-15 09:00:00 UTC" in message and "sign it again" in message
    stranger = dataclasses.replace(POLICY, publishers=())
    refused("unknown_publisher", stranger, STATEMENT, now=expires + 1)


def test_a_release_from_the_future_is_refused_beyond_the_clock_skew() -> None:
    ahead = KEY.sign("web", "2.0.0", SHA, 1, issued_at=NOW + MAX_CLOCK_SKEW, expires_at=None)
    assert POLICY.verify(ahead, now=NOW) is OPS
    too_far = KEY.sign("web", "2.0.0", SHA, 1, issued_at=NOW + MAX_CLOCK_SKEW + 1, expires_at=None)
    message = refused("release_not_yet_valid", POLICY, too_far)
    assert "check the clocks" in message
    far_future = KEY.sign("web", "2.0.0", SHA, 1, issued_at=2**64 - 2, expires_at=2**64 - 1)
    assert "unix time" in refused("release_not_yet_valid", POLICY, far_future)


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "api"), ("version", "2.0.1"), ("archive_sha256", "cd" * 32), ("archive_size", 4095)],
)
def test_a_statement_about_another_archive_is_refused(field: str, value: object) -> None:
    actual = {"name": "web", "version": "2.0.0", "archive_sha256": SHA, "archive_size": 4096}
    POLICY.check_archive(STATEMENT, **actual)  # type: ignore[arg-type]
    POLICY.check_archive(STATEMENT, **{**actual, "archive_sha256": SHA.upper()})  # type: ignore[arg-type]
    with pytest.raises(ReleaseError) as caught:
        POLICY.check_archive(STATEMENT, **{**actual, field: value})  # type: ignore[arg-type]
    assert caught.value.code == "release_mismatch"
    assert f"its {field} is {getattr(STATEMENT, field)}, the archive's is {value}" in caught.value.message


def test_a_missing_statement_is_refused_only_when_required() -> None:
    POLICY.require(None)
    POLICY.require(STATEMENT)
    strict = TrustPolicy((OPS,), require_signed=True)
    strict.require(STATEMENT)
    with pytest.raises(ReleaseError) as caught:
        strict.require(None)
    assert caught.value.code == "release_required"
    assert "require_signed = true" in caught.value.message and "p2p-orchestrator sign" in caught.value.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"label": "", "public_key": KEY.public_key, "services": ("web",)},
        {"label": "ops", "public_key": b"short", "services": ("web",)},
        {"label": "ops", "public_key": KEY.public_key, "services": ()},
        {"label": "ops", "public_key": KEY.public_key, "services": ("",)},
        {"label": "ops", "public_key": KEY.public_key, "services": ["web"]},
    ],
)
def test_a_malformed_publisher_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ReleaseError):
        Publisher(**kwargs)  # type: ignore[arg-type]
