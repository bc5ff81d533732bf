"""Settings as layers over defaults: the manifest's, then the operator's (restart and health policies)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["overlay"]

P = TypeVar("P", bound="DataclassInstance")


def overlay(
    defaults: P,
    layers: Iterable[Mapping[str, Any] | None],
    *,
    check: Callable[[str, Any], Any],
    where: str,
    known: Iterable[str] | None = None,
) -> P:
    """``defaults`` (a frozen dataclass) with each layer's keys replaced in turn, by ``check(key, value)``.

    ``check`` returns the value to keep or raises :class:`ValueError`.  An unknown key raises
    :class:`ValueError` naming it and the known keys (in the fields' order, or ``known``'s).
    """
    names = [f.name for f in fields(defaults)]
    listed = ", ".join(names if known is None else known)
    settings = defaults
    for layer in layers:
        changes: dict[str, Any] = {}
        for key, value in (layer or {}).items():
            if key not in names:
                raise ValueError(f"{where}: unknown key {key!r}; known: {listed}")
            changes[key] = check(key, value)
        settings = replace(settings, **changes)
    return settings
