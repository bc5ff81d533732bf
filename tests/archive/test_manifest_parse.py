"""parse_manifest, default_manifest and check_service_name."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from p2p_orchestrator.archive import (
    SERVICE_NAME_RE,
    ArchiveLimits,
    Dependency,
    Manifest,
    Version,
    check_service_name,
    default_manifest,
    parse_manifest,
)
from p2p_orchestrator.errors import ServiceInstallationError

FULL = {
    "name": "example_service",
    "version": "1.0.0",
    "description": "An example",
    "author": "Someone",
    "dependencies": ["some_dependency", "db_service>=1.2,<2"],
    "exposed_methods": ["example_method", "other_2"],
    "configuration": {"setting1": "value1", "setting2": 42, "nested": {"x": [1.5, None, True]}},
    "auto_start": True,
    "restart": {"policy": "on-failure"},
    "health": {"interval": 10},
    "future_field": {"kept": True},
}


def parse(obj: Any, name: str = "example_service") -> Manifest:
    return parse_manifest(json.dumps(obj).encode(), service_name=name)


def test_full_manifest() -> None:
    manifest = parse(FULL)
    assert manifest.name == "example_service"
    assert manifest.version == Version(1, 0, 0)
    assert manifest.description == "An example"
    assert manifest.author == "Someone"
    assert manifest.dependencies == (Dependency("some_dependency"), Dependency.parse("db_service>=1.2,<2"))
    assert manifest.exposed_methods == ("example_method", "other_2")
    assert manifest.configuration["nested"] == {"x": [1.5, None, True]}
    assert manifest.auto_start is True
    assert manifest.restart == {"policy": "on-failure"}
    assert manifest.health == {"interval": 10}
    assert manifest.raw == FULL
    report = manifest.to_dict()
    assert json.loads(json.dumps(report)) == report
    assert report["future_field"] == {"kept": True}
    assert report["dependencies"] == ["some_dependency", "db_service>=1.2.0,<2.0.0"]
    report["configuration"]["setting1"] = "changed"
    assert manifest.configuration["setting1"] == "value1"
    with pytest.raises(TypeError):
        manifest.configuration["setting1"] = "changed"  # type: ignore[index]


def test_minimal_manifest_and_default() -> None:
    manifest = parse({})
    assert manifest == default_manifest("example_service")
    assert manifest.to_dict() == {
        "name": "example_service",
        "version": "0.0.0",
        "description": "",
        "author": "",
        "dependencies": [],
        "exposed_methods": [],
        "configuration": {},
        "auto_start": None,
        "event_loop": "asyncio",
        "network": True,
        "restart": {},
        "health": {},
    }
    assert hash(manifest) == hash(default_manifest("example_service"))


def test_limits() -> None:
    data = json.dumps({"description": "x" * 100}).encode()
    parse_manifest(data, service_name="svc", limits=ArchiveLimits(max_manifest_bytes=len(data)))
    with pytest.raises(ServiceInstallationError) as info:
        parse_manifest(data, service_name="svc", limits=ArchiveLimits(max_manifest_bytes=len(data) - 1))
    assert info.value.code == "manifest_too_large"


def nested(depth: int) -> bytes:
    return b'{"configuration": {"x": ' + b"[" * (depth - 2) + b"]" * (depth - 2) + b"}}"


def test_nesting_limit() -> None:
    parse_manifest(nested(32), service_name="svc")
    with pytest.raises(ServiceInstallationError, match="deeper than 32"):
        parse_manifest(nested(33), service_name="svc")
    # Brackets inside strings do not count.
    parse_manifest(b'{"description": "' + b"[{" * 100 + b'\\"[["}', service_name="svc")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b"\xef\xbb\xbf{}", "byte order mark", id="bom"),
        pytest.param(b'{"description": "\xff"}', "invalid JSON", id="not-utf8"),
        pytest.param(b"{", "invalid JSON", id="syntax"),
        pytest.param(b"{} {}", "invalid JSON", id="extra-data"),
        pytest.param(b"", "invalid JSON", id="empty"),
        pytest.param(b"[]", "must be a JSON object", id="array"),
        pytest.param(b'"text"', "must be a JSON object", id="string"),
        pytest.param(b"null", "must be a JSON object", id="null"),
        pytest.param(b'{"a": 1, "a": 2}', "duplicate key 'a'", id="duplicate-key"),
        pytest.param(b'{"configuration": {"x": {"k": 1, "k": 1}}}', "duplicate key 'k'", id="nested-dup"),
        pytest.param(b'{"a": NaN}', "NaN", id="nan"),
        pytest.param(b'{"a": Infinity}', "Infinity", id="infinity"),
        pytest.param(b'{"a": -Infinity}', "Infinity", id="minus-infinity"),
        pytest.param(b'{"a": 1e999}', "too large", id="float-overflow"),
        pytest.param(b'{"a": 9007199254740993}', "2**53", id="big-int"),
        pytest.param(b'{"a": -9007199254740993}', "2**53", id="big-negative-int"),
        pytest.param(b'{"a": ' + b"9" * 5000 + b"}", "2**53", id="huge-int"),
        pytest.param(b'{"a": "\\ud800"}', "surrogate", id="lone-surrogate"),
        pytest.param(b'{"\\udfff": 1}', "surrogate", id="lone-surrogate-key"),
        pytest.param(b'{"a": "\x01"}', "invalid JSON", id="raw-control-char"),
        pytest.param(nested(40), "deeper than 32", id="deep"),
        pytest.param(b"[" * 100_000, "deeper than 32", id="very-deep"),
    ],
)
def test_strict_json(data: bytes, fragment: str) -> None:
    with pytest.raises(ServiceInstallationError) as info:
        parse_manifest(data, service_name="svc", limits=ArchiveLimits(max_manifest_bytes=1 << 20))
    assert info.value.code == "bad_manifest"
    assert fragment in info.value.message
    assert info.value.message.startswith("manifest.json")


def test_safe_integers_at_the_edge() -> None:
    manifest = parse_manifest(b'{"a": 9007199254740992, "b": -9007199254740992}', service_name="svc")
    assert manifest.raw == {"a": 2**53, "b": -(2**53)}


@pytest.mark.parametrize(
    ("obj", "code", "fragment"),
    [
        ({"event_loop": "gevent"}, "bad_manifest", "'asyncio', 'trio'"),
        ({"event_loop": 1}, "bad_manifest", "'event_loop'"),
        ({"network": "no"}, "bad_manifest", "'network'"),
        ({"name": 1}, "bad_manifest", "'name' must be a string"),
        ({"version": 1}, "bad_manifest", "'version' must be a string"),
        ({"version": None}, "bad_manifest", "'version'"),
        ({"version": "1.0"}, "bad_version", "'1.0'"),
        ({"description": []}, "bad_manifest", "'description'"),
        ({"author": {}}, "bad_manifest", "'author'"),
        ({"dependencies": "db"}, "bad_manifest", "'dependencies' must be a list"),
        ({"dependencies": [1]}, "bad_manifest", "dependencies[0]"),
        ({"dependencies": ["db", "DB"]}, "bad_dependency", "dependencies[1]"),
        ({"dependencies": ["db", "db>=1"]}, "bad_dependency", "listed twice"),
        ({"dependencies": ["svc>=1"]}, "bad_dependency", "itself"),
        ({"exposed_methods": "m"}, "bad_manifest", "'exposed_methods'"),
        ({"exposed_methods": [1]}, "bad_manifest", "exposed_methods[0]"),
        ({"exposed_methods": ["__init__"]}, "bad_manifest", "'__init__'"),
        ({"exposed_methods": ["_private"]}, "bad_manifest", "'_private'"),
        ({"exposed_methods": ["a-b"]}, "bad_manifest", "'a-b'"),
        ({"exposed_methods": ["métho"]}, "bad_manifest", "métho"),
        ({"exposed_methods": ["m", "m"]}, "bad_manifest", "twice"),
        ({"configuration": []}, "bad_manifest", "'configuration' must be an object"),
        ({"configuration": None}, "bad_manifest", "'configuration'"),
        ({"auto_start": 1}, "bad_manifest", "'auto_start'"),
        ({"auto_start": "true"}, "bad_manifest", "'auto_start'"),
        ({"restart": "always"}, "bad_manifest", "'restart' must be an object"),
        ({"health": [1]}, "bad_manifest", "'health'"),
    ],
)
def test_field_types(obj: dict[str, Any], code: str, fragment: str) -> None:
    with pytest.raises(ServiceInstallationError) as info:
        parse(obj, "svc")
    assert info.value.code == code
    assert fragment in info.value.message


@pytest.mark.parametrize("name", ["a", "svc", "my_service_2", "a" * 64])
def test_good_service_names(name: str) -> None:
    assert check_service_name(name) == name
    assert re.match(SERVICE_NAME_RE, name)


@pytest.mark.parametrize(
    "name",
    ["", "A", "Svc", "1svc", "_svc", "my-svc", "svc.x", "svc\n", "a" * 65, "sv c", "\u017fvc", 3, None],
)
def test_bad_service_names(name: object) -> None:
    with pytest.raises(ServiceInstallationError) as info:
        check_service_name(name)
    assert info.value.code == "bad_service_name"


def test_parse_manifest_checks_the_service_name() -> None:
    with pytest.raises(ServiceInstallationError) as info:
        parse_manifest(b"{}", service_name="Bad")
    assert info.value.code == "bad_service_name"


def test_a_name_other_than_the_directory_is_installed_under_the_directory_with_a_warning() -> None:
    manifest = parse({"name": "legacy_name"}, "svc")
    assert manifest.name == "svc"
    assert manifest.raw["name"] == "legacy_name"
    assert manifest.warnings == (
        "manifest.json names the service 'legacy_name', but its directory is 'svc': it is installed as 'svc'",
    )
    assert parse({"name": "svc"}, "svc").warnings == ()


def test_the_framework_as_a_dependency_is_always_satisfied() -> None:
    manifest = parse({"dependencies": ["service_framework", "db>=1"]}, "svc")
    assert manifest.dependencies == (Dependency.parse("db>=1"),)


@pytest.mark.parametrize(("given", "loop"), [({}, "asyncio"), ({"event_loop": "trio"}, "trio")])
def test_event_loop_defaults_to_asyncio(given: dict[str, Any], loop: str) -> None:
    assert parse(given, "svc").event_loop == loop
