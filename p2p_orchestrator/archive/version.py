"""Semantic versions and dependency constraints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from p2p_orchestrator.archive._names import check_service_name
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["Dependency", "Version"]

_MAX_TEXT = 256
_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD_ID = r"[0-9a-zA-Z-]+"
_SEMVER = re.compile(
    rf"({_NUMBER})\.({_NUMBER})\.({_NUMBER})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+({_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)
_PRE_ID_RE = re.compile(_PRE_ID)
_BUILD_RE = re.compile(rf"{_BUILD_ID}(?:\.{_BUILD_ID})*")
_PARTIAL = re.compile(rf"{_NUMBER}(?:\.{_NUMBER}){{0,2}}")
_OPERATORS = ("==", "!=", ">=", "<=", ">", "<")
_CONSTRAINT = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(\S+?)\s*")
_DEPENDENCY = re.compile(r"\s*([a-z][a-z0-9_]{0,63})\s*(.*)", re.DOTALL)


def _bad_version(text: object, why: str) -> ServiceInstallationError:
    return ServiceInstallationError(f"invalid version {text!r}: {why}", code="bad_version")


@dataclass(frozen=True)
class Version:
    """A semantic version (https://semver.org, 2.0.0).

    ``<``, ``<=``, ``>`` and ``>=`` follow semver precedence, in which build
    metadata does not count; ``==`` compares every field, so ``1.0.0+a`` and
    ``1.0.0+b`` are neither equal nor ordered one before the other.  ``str()``
    gives the canonical text::

        >>> Version.parse("1.0.0-alpha.1") < Version.parse("1.0.0")
        True
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...] = ()
    build: str = ""

    def __post_init__(self) -> None:
        for value in (self.major, self.minor, self.patch):
            if type(value) is not int or value < 0:
                raise _bad_version(value, "major, minor and patch must be non-negative ints")
        for ident in self.prerelease:
            if type(ident) is int:
                if ident < 0:
                    raise _bad_version(ident, "negative pre-release identifier")
            elif not (isinstance(ident, str) and _PRE_ID_RE.fullmatch(ident) and not ident.isdigit()):
                raise _bad_version(ident, "bad pre-release identifier")
        if self.build and _BUILD_RE.fullmatch(self.build) is None:
            raise _bad_version(self.build, "bad build metadata")

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``; raise ``bad_version`` otherwise."""
        if not isinstance(text, str):
            raise _bad_version(text, "not a string")
        if len(text) > _MAX_TEXT:
            raise _bad_version(text[:40] + "...", f"longer than {_MAX_TEXT} characters")
        match = _SEMVER.fullmatch(text)
        if match is None:
            raise _bad_version(text, "expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] (semver 2.0.0)")
        major, minor, patch, pre, build = match.groups()
        prerelease = tuple(int(i) if i.isdigit() else i for i in pre.split(".")) if pre else ()
        return cls(int(major), int(minor), int(patch), prerelease, build or "")

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(i) for i in self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    @property
    def precedence(self) -> tuple[Any, ...]:
        """A sort key implementing semver precedence (build metadata ignored)."""
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        pre = tuple((0, i, "") if isinstance(i, int) else (1, 0, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence < other.precedence

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence <= other.precedence

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence > other.precedence

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence >= other.precedence


def _constraint_version(text: str, source: str) -> Version:
    if _PARTIAL.fullmatch(text):
        numbers = [int(n) for n in text.split(".")] + [0, 0]
        return Version(numbers[0], numbers[1], numbers[2])
    try:
        return Version.parse(text)
    except ServiceInstallationError as exc:
        raise _bad_dependency(source, exc.message) from exc


def _bad_dependency(text: object, why: str) -> ServiceInstallationError:
    return ServiceInstallationError(f"invalid dependency {text!r}: {why}", code="bad_dependency")


@dataclass(frozen=True)
class Dependency:
    """Another service this one needs, optionally within a version range.

    Written ``name``, ``name>=1.2`` or ``name>=1.2,<2.0`` with the operators
    ``== != >= <= > <``; a partial version such as ``1.2`` means ``1.2.0``.
    Constraints compare by semver precedence, so ``==1.0.0`` also allows
    ``1.0.0+build.5``; pre-releases get no special treatment.
    """

    name: str
    constraints: tuple[tuple[str, Version], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Dependency:
        """Parse a dependency string; raise ``bad_dependency`` if it is malformed."""
        if not isinstance(text, str):
            raise _bad_dependency(text, "not a string")
        if len(text) > _MAX_TEXT:
            raise _bad_dependency(text[:40] + "...", f"longer than {_MAX_TEXT} characters")
        match = _DEPENDENCY.fullmatch(text)
        if match is None:
            raise _bad_dependency(text, "expected a service name, then optional constraints like >=1.2,<2")
        name, rest = match.groups()
        constraints: list[tuple[str, Version]] = []
        if rest.strip():
            for piece in rest.split(","):
                part = _CONSTRAINT.fullmatch(piece)
                if part is None:
                    raise _bad_dependency(
                        text, f"bad constraint {piece.strip()!r} (use ==, !=, >=, <=, > or <)"
                    )
                constraints.append((part[1], _constraint_version(part[2], text)))
        return cls(name, tuple(constraints))

    def __post_init__(self) -> None:
        try:
            check_service_name(self.name)
        except ServiceInstallationError as exc:
            raise _bad_dependency(self.name, exc.message) from exc
        for op, version in self.constraints:
            if op not in _OPERATORS or not isinstance(version, Version):
                raise _bad_dependency(self.name, f"bad constraint {op!r} {version!r}")

    def allows(self, version: Version) -> bool:
        """True if ``version`` satisfies every constraint."""
        have = version.precedence
        for op, bound in self.constraints:
            want = bound.precedence
            ok = {
                "==": have == want,
                "!=": have != want,
                ">=": have >= want,
                "<=": have <= want,
                ">": have > want,
                "<": have < want,
            }[op]
            if not ok:
                return False
        return True

    def __str__(self) -> str:
        return self.name + ",".join(f"{op}{version}" for op, version in self.constraints)
