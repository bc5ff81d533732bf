"""Size and shape limits applied while reading an archive."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DEFAULT_LIMITS", "ArchiveLimits"]


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that :func:`unpack_archive` enforces while it streams an archive.

    Every limit is checked as soon as it is passed, so an oversized or hostile
    archive costs at most the limit in time, memory and disk, never its full size.
    """

    max_compressed_bytes: int = 256 * 1024 * 1024
    max_uncompressed_bytes: int = 1024 * 1024 * 1024
    max_members: int = 10_000
    #: Path components below the service's top directory.
    max_path_depth: int = 16
    #: Whole member path, in UTF-8 bytes.
    max_path_length: int = 255
    #: Payload of pax and GNU long-name headers, per member.
    max_header_bytes: int = 16 * 1024
    #: Also bounds ``config/default.json``.
    max_manifest_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"ArchiveLimits.{field.name} must be a positive int, got {value!r}")


#: The limits used when a caller passes none.
DEFAULT_LIMITS = ArchiveLimits()
