"""Version (semver 2.0.0) and Dependency parsing and ordering."""

from __future__ import annotations

import itertools
import random

import pytest

from p2p_orchestrator.archive import Dependency, Version
from p2p_orchestrator.errors import ServiceInstallationError

V = Version.parse


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("0.0.0", (0, 0, 0, (), "")),
        ("1.2.3", (1, 2, 3, (), "")),
        ("10.20.30", (10, 20, 30, (), "")),
        ("1.0.0-alpha", (1, 0, 0, ("alpha",), "")),
        ("1.0.0-alpha.1", (1, 0, 0, ("alpha", 1), "")),
        ("1.0.0-0.3.7", (1, 0, 0, (0, 3, 7), "")),
        ("1.0.0-x.7.z.92", (1, 0, 0, ("x", 7, "z", 92), "")),
        ("1.0.0-x-y-z.--", (1, 0, 0, ("x-y-z", "--"), "")),
        ("1.0.0-0a.00a", (1, 0, 0, ("0a", "00a"), "")),
        ("1.0.0-alpha+001", (1, 0, 0, ("alpha",), "001")),
        ("1.0.0+20130313144700", (1, 0, 0, (), "20130313144700")),
        ("1.0.0-beta+exp.sha.5114f85", (1, 0, 0, ("beta",), "exp.sha.5114f85")),
        ("1.0.0+21AF26D3----117B344092BD", (1, 0, 0, (), "21AF26D3----117B344092BD")),
        ("99999999999999999999.0.0", (99999999999999999999, 0, 0, (), "")),
    ],
)
def test_parse_valid(text: str, fields: tuple[object, ...]) -> None:
    version = V(text)
    assert (version.major, version.minor, version.patch, version.prerelease, version.build) == fields
    assert str(version) == text
    assert V(str(version)) == version


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "-1.2.3",
        "v1.2.3",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "1.2.3-",
        "1.2.3-01",
        "1.2.3-alpha..1",
        "1.2.3-alpha_1",
        "1.2.3+",
        "1.2.3+a..b",
        "1.2.3+a+b",
        "\uff11.2.3",
        "1.2.3-\u0661",
        "1.0.0-" + "a" * 300,
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ServiceInstallationError) as info:
        V(text)
    assert info.value.code == "bad_version"


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(ServiceInstallationError):
        V(123)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args", [(-1, 0, 0), (1, 0, 0, ("01",)), (1, 0, 0, ("a b",)), (1, 0, 0, (), "+"), (True, 0, 0)]
)
def test_constructor_validates(args: tuple[object, ...]) -> None:
    with pytest.raises(ServiceInstallationError):
        Version(*args)  # type: ignore[arg-type]


SEMVER_ORG_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
]


def test_semver_org_precedence() -> None:
    versions = [V(text) for text in SEMVER_ORG_ORDER]
    for lower, higher in itertools.pairwise(versions):
        assert lower < higher
        assert lower <= higher
        assert higher > lower
        assert higher >= lower
        assert not higher < lower
    shuffled = versions[:]
    random.Random(4).shuffle(shuffled)
    assert sorted(shuffled) == versions


def test_build_metadata_is_ignored_in_precedence_only() -> None:
    a, b = V("1.0.0+a"), V("1.0.0+b")
    assert not a < b
    assert not b < a
    assert a <= b
    assert a >= b
    assert a != b
    assert V("1.0.0+a") == a
    assert len({a, b, V("1.0.0+a")}) == 2


def test_comparison_with_other_types() -> None:
    text: object = "1.0.0"
    assert V("1.0.0") != text
    with pytest.raises(TypeError):
        _ = V("1.0.0") < text


@pytest.mark.parametrize(
    ("text", "canonical", "allowed", "refused"),
    [
        ("db_service", "db_service", ["0.0.0", "99.0.0-rc.1"], []),
        ("db_service>=1.2", "db_service>=1.2.0", ["1.2.0", "1.2.1", "3.0.0"], ["1.1.9", "1.2.0-rc.1"]),
        ("db_service>=1.2,<2.0", "db_service>=1.2.0,<2.0.0", ["1.2.0", "1.9.9"], ["2.0.0", "1.0.0"]),
        (" db_service >= 1.2 , < 2 ", "db_service>=1.2.0,<2.0.0", ["1.5.0"], ["2.0.0"]),
        ("db==1.0.0", "db==1.0.0", ["1.0.0", "1.0.0+build.5"], ["1.0.1", "1.0.0-rc.1"]),
        ("db!=1.0", "db!=1.0.0", ["1.0.1"], ["1.0.0"]),
        ("db<=1", "db<=1.0.0", ["1.0.0", "0.9.0"], ["1.0.1"]),
        ("db>1.0.0-rc.1", "db>1.0.0-rc.1", ["1.0.0-rc.2", "1.0.0"], ["1.0.0-rc.1", "1.0.0-beta"]),
        ("db<1.0.0", "db<1.0.0", ["1.0.0-rc.1", "0.1.0"], ["1.0.0"]),
    ],
)
def test_dependency(text: str, canonical: str, allowed: list[str], refused: list[str]) -> None:
    dep = Dependency.parse(text)
    assert str(dep) == canonical
    assert Dependency.parse(str(dep)) == dep
    for version in allowed:
        assert dep.allows(V(version)), version
    for version in refused:
        assert not dep.allows(V(version)), version


@pytest.mark.parametrize(
    "text",
    [
        "",
        "DB",
        "1db",
        "db-service",
        "db>=",
        "db=>1.0",
        "db=1.0",
        "db~=1.2",
        "db^1.2",
        "db 1.2",
        "db>=1.2,",
        "db>=1.2,,<2",
        "db>=1.2.3.4",
        "db>=x",
        "db>=01.2",
        "db>=1.2 <2",
        "db>=1.0.0-01",
        "a" * 65,
        "db>=" + "1" * 300,
    ],
)
def test_dependency_invalid(text: str) -> None:
    with pytest.raises(ServiceInstallationError) as info:
        Dependency.parse(text)
    assert info.value.code == "bad_dependency"
