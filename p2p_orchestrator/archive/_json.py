"""A strict JSON reader for manifests and configuration files."""

from __future__ import annotations

import json
import math
from typing import Any

from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["MAX_DEPTH", "load_object"]

MAX_DEPTH = 32
_MAX_SAFE_INT = 2**53


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not valid JSON")


def _parse_int(text: str) -> int:
    if len(text) > 17 or abs(value := int(text)) > _MAX_SAFE_INT:
        raise _Refused(f"integer {text[:20]} is outside ±2**53")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:20]} is too large")
    return value


def _depth(text: str) -> int:
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates (from ``\\ud800`` escapes): they cannot be re-encoded as UTF-8."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def load_object(data: bytes, *, what: str, code: str) -> dict[str, Any]:
    """Parse ``data`` as one JSON object, strictly.

    Refused: a UTF-8 BOM or invalid UTF-8, duplicate keys, ``NaN`` and
    ``Infinity``, integers beyond ±2**53, nesting deeper than 32, lone
    surrogates, and any top-level value other than an object.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        raise ServiceInstallationError(f"{what}: starts with a byte order mark", code=code)
    try:
        text = data.decode("utf-8")
        if _depth(text) > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_parse_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
        _check_strings(value)
    except (UnicodeError, ValueError) as exc:
        raise ServiceInstallationError(f"{what}: invalid JSON: {exc}", code=code) from exc
    if not isinstance(value, dict):
        raise ServiceInstallationError(f"{what}: must be a JSON object", code=code)
    return value
