"""How a service's configuration is assembled from its layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_configuration(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Overlay configuration layers, later ones winning, merging nested objects.

    The orchestrator calls it as ``merge_configuration(manifest.configuration,
    config/default.json, operator settings)``: a key set in a later layer replaces
    the earlier value, except that two objects under the same key are merged key by
    key.  The inputs are never modified.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            previous = merged.get(key)
            if isinstance(previous, Mapping) and isinstance(value, Mapping):
                merged[key] = merge_configuration(previous, value)
            elif isinstance(value, Mapping):
                merged[key] = merge_configuration(value)
            else:
                merged[key] = value
    return merged
