"""Who may call what: a peer's role, turned into the :class:`~p2p_orchestrator.rpc.Caller` of its calls.

The node never believes a message about who is calling.  The caller of a
request is the remote peer ID of the libp2p connection that carries its
stream, which the Noise handshake authenticated; this module maps that peer ID
to a role and the role to permissions:

=============  ================================  ===================================
role           permissions                       orchestrator methods it may call
=============  ================================  ===================================
``admin``      every :class:`Permission`          all
``deployer``   ``DEPLOY``, ``READ``               install, uninstall, start, stop,
                                                  restart, rollback, distribute, and
                                                  everything ``reader`` may
``reader``     ``READ``                           list, info, status, export, events
(no role)      none                               none
=============  ================================  ===================================

Service methods: a remote peer, whatever its role, may call only the methods a
service marks ``public=True`` (non-public methods are for the node's own
callers; see :func:`~p2p_orchestrator.framework.service_method`).  A peer with
no role may call only those of them that also say ``requires_auth=False`` (a
built-in ``ping``, say), and only with ``unknown_peers = "public"`` (the
default); with ``unknown_peers = "none"`` it may call nothing at all.  Calls from this node itself
(the API, the control socket, its services) are the local caller, allowed
everything.

Where roles come from, in order of precedence:

1. ``[access.roles]`` in ``config.toml``: the operator's, fixed while the node
   runs (:meth:`AccessControl.set_role` refuses to change them);
2. ``roles.toml`` in the home directory: written by :meth:`AccessControl.set_role`
   (``node.set_role``), owned by the node, mode 0600.  Its format is one table::

       # Roles given at run time by Node.set_role (written by the node).
       [roles]
       "12D3KooW..." = "deployer"

This module does not import libp2p, so the CLI can use it.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from p2p_orchestrator._files import write_atomically
from p2p_orchestrator._patterns import PEER_ID
from p2p_orchestrator.callers import LOCAL_CALLER, Caller, Permission
from p2p_orchestrator.config import ACCESS_ROLES, AccessSettings, ConfigError, check_not_writable_by_others

__all__ = ["LOCAL_CALLER", "ROLES_FILE_NAME", "ROLE_PERMISSIONS", "AccessControl", "Role"]

log = logging.getLogger("p2p_orchestrator.node")

ROLES_FILE_NAME = "roles.toml"


class Role(StrEnum):
    """What a peer is trusted with on this node."""

    ADMIN = "admin"
    DEPLOYER = "deployer"
    READER = "reader"


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.DEPLOYER: frozenset({Permission.DEPLOY, Permission.READ}),
    Role.READER: frozenset({Permission.READ}),
}


class AccessControl:
    """The role table of one node and the callers it implies; see the module docstring."""

    def __init__(self, settings: AccessSettings, home: Path) -> None:
        self._fixed = {peer: Role(role) for peer, role in settings.roles.items()}
        self._unknown_public = settings.unknown_peers == "public"
        self._path = home / ROLES_FILE_NAME
        self._runtime: dict[str, Role] = _read_roles_file(self._path)
        for peer in sorted(self._runtime.keys() & self._fixed.keys()):
            log.warning("%s gives %s a role that config.toml overrides", self._path, peer)

    @property
    def path(self) -> Path:
        """Where :meth:`set_role` keeps the roles it gives."""
        return self._path

    def roles(self) -> dict[str, Role]:
        """Every peer with a role, and the role in force."""
        return {**self._runtime, **self._fixed}

    def role_of(self, peer_id: str) -> Role | None:
        """The role of ``peer_id`` (config.toml first), or ``None`` for an unknown peer."""
        return self._fixed.get(peer_id) or self._runtime.get(peer_id)

    def caller_for(self, peer_id: str) -> Caller | None:
        """The caller of a request from ``peer_id``; ``None`` means refuse everything."""
        role = self.role_of(peer_id)
        if role is None:
            if not self._unknown_public:
                return None
            return Caller(peer_id=peer_id, permissions=frozenset(), public_only=True)
        return Caller(peer_id=peer_id, permissions=ROLE_PERMISSIONS[role], public_only=True, role=role.value)

    def set_role(self, peer_id: str, role: Role | str | None) -> None:
        """Give ``peer_id`` a role (``None`` takes it away) now and in ``roles.toml``.

        Raises :class:`~p2p_orchestrator.ConfigError` for a malformed peer ID or
        role, and (code ``role_fixed_in_config``) for a peer whose role
        ``config.toml`` sets.  Blocking (it writes a small file): call it from a
        worker thread in async code, as ``Node.set_role`` does.
        """
        if not isinstance(peer_id, str) or not PEER_ID.fullmatch(peer_id):
            raise ConfigError(f"{peer_id!r} is not a peer ID", code="bad_peer_id")
        if peer_id in self._fixed:
            raise ConfigError(
                f"the role of {peer_id} is set in config.toml ([access.roles]); change it there",
                code="role_fixed_in_config",
            )
        roles = dict(self._runtime)
        if role is None:
            roles.pop(peer_id, None)
        else:
            try:
                roles[peer_id] = Role(role)
            except ValueError:
                wanted = ", ".join(r.value for r in Role)
                raise ConfigError(f"role must be one of {wanted}, got {role!r}", code="bad_role") from None
        _write_roles_file(self._path, roles)
        self._runtime = roles
        log.info("Peer %s now has role %s", peer_id, role or "none")


def _read_roles_file(path: Path) -> dict[str, Role]:
    check_not_writable_by_others(path, "the roles file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if set(data) - {"roles"} or not isinstance(data.get("roles", {}), dict):
        raise ConfigError(f"{path} must hold only a [roles] table")
    roles: dict[str, Role] = {}
    for peer, role in data.get("roles", {}).items():
        if not PEER_ID.fullmatch(peer) or role not in ACCESS_ROLES:
            raise ConfigError(f"{path}: bad entry {peer!r} = {role!r}")
        roles[peer] = Role(role)
    return roles


def _write_roles_file(path: Path, roles: Mapping[str, Role]) -> None:
    """Replace ``path`` atomically (temporary file, fsync, rename), mode 0600."""
    lines = ["# Roles given at run time by Node.set_role (written by the node).", "[roles]"]
    lines += [f'"{peer}" = "{role.value}"' for peer, role in sorted(roles.items())]
    data = ("\n".join(lines) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)
