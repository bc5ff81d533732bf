"""Service archives: checking, unpacking and packing them, and their manifests.

A service archive is a gzip'd tar holding one directory named after the service::

    my_service/
        main.py              required
        manifest.json        optional, see :class:`Manifest`
        config/default.json  optional, a JSON object
        ...                  any other plain files and directories

:func:`unpack_archive` is the security boundary: it reads an untrusted archive
in one bounded, streaming pass and either writes a clean service tree or
raises :class:`~p2p_orchestrator.errors.ServiceInstallationError` and leaves
nothing behind.  :func:`pack_service` is its inverse and is deterministic.
Everything here is blocking; async callers run it in a worker thread.

Refusals carry a stable ``code``: ``not_gzip``, ``corrupt_archive``,
``truncated_archive``, ``trailing_data``, ``not_tar``, ``bad_tar_header``,
``bad_pax_header``, ``header_too_large``, ``bad_member_name``,
``bad_member_type``, ``duplicate_member``, ``name_collision``, ``bad_layout``,
``bad_service_name``, ``missing_main``, ``forbidden_file``, ``too_many_members``,
``path_too_deep``, ``path_too_long``, ``archive_too_large``,
``uncompressed_too_large``, ``bad_manifest``, ``manifest_too_large``,
``manifest_name_mismatch``, ``bad_version``, ``bad_dependency``, ``bad_config``;
I/O failures are ``read_failed`` (the source), ``write_failed`` (the
destination or ``copy_to``) and ``cleanup_failed``; :func:`pack_service` adds
``bad_source``.
"""

from p2p_orchestrator.archive._limits import ArchiveLimits
from p2p_orchestrator.archive._names import SERVICE_NAME_RE, check_service_name
from p2p_orchestrator.archive._pack import pack_service, pack_service_bytes
from p2p_orchestrator.archive._unpack import UnpackedArchive, unpack_archive
from p2p_orchestrator.archive.manifest import Manifest, default_manifest, parse_manifest
from p2p_orchestrator.archive.version import Dependency, Version

__all__ = [
    "SERVICE_NAME_RE",
    "ArchiveLimits",
    "Dependency",
    "Manifest",
    "UnpackedArchive",
    "Version",
    "check_service_name",
    "default_manifest",
    "pack_service",
    "pack_service_bytes",
    "parse_manifest",
    "unpack_archive",
]
