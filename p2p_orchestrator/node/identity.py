"""The node's identity: a persistent Ed25519 key in ``<home>/identity.key``.

The peer ID is derived from the public key, so keeping the key keeps the peer
ID across restarts; peers that trust this node (``[access.roles]`` on their
side) recognise it by that ID.  The rules:

* On first start the key is created with mode ``0600`` (written to a temporary
  file, flushed, then linked into place, so a crash never leaves half a key).
* The file holds the key in libp2p's standard protobuf serialisation (the same
  bytes go-libp2p and js-libp2p write).
* The node refuses to start when the file is readable or writable by the group
  or others (anyone who can read it can impersonate the node), or when it is
  not an Ed25519 key (corrupt, truncated, another key type).  Fix the mode with
  ``chmod 600``; a corrupt key can only be replaced, which changes the peer ID.

Loading a key imports libp2p: only the node does it.
"""

from __future__ import annotations

from pathlib import Path

from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.ed25519 import create_new_key_pair as new_ed25519_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.serialization import deserialize_private_key
from libp2p.peer.id import ID

from p2p_orchestrator._files import ExposedFile, NotRegularFile, create_private, read_private
from p2p_orchestrator.errors import IdentityError

__all__ = ["IDENTITY_FILE_NAME", "IdentityError", "load_or_create_identity", "peer_id_of", "verify_signature"]

IDENTITY_FILE_NAME = "identity.key"
_MAX_KEY_FILE_BYTES = 4096


def peer_id_of(key_pair: KeyPair) -> str:
    """The base58 peer ID (``12D3KooW...``) of a key pair."""
    return str(ID.from_pubkey(key_pair.public_key).to_base58())


def verify_signature(peer_id: str, data: bytes, signature: bytes) -> bool:
    """Whether the identity key of ``peer_id`` (an Ed25519 peer ID holds its public key) signed ``data``."""
    try:
        key = ID.from_base58(peer_id).extract_public_key()
        return key is not None and bool(key.verify(data, signature))
    except Exception:  # a malformed peer ID or signature is just not a valid signature
        return False


def load_or_create_identity(home: Path) -> KeyPair:
    """The key pair stored in ``home``, created there on first use; see the module docstring."""
    path = home / IDENTITY_FILE_NAME
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise IdentityError(f"cannot read {path}: {exc}", code="identity_unreadable") from exc
    home.mkdir(parents=True, exist_ok=True)
    key_pair = new_ed25519_key_pair()
    try:
        create_private(path, key_pair.private_key.serialize())
    except FileExistsError:
        return _load(path)  # another process created it first: use theirs
    return key_pair


def _load(path: Path) -> KeyPair:
    try:
        data = read_private(path, _MAX_KEY_FILE_BYTES)  # FileNotFoundError goes to the caller
    except NotRegularFile:
        raise IdentityError(f"{path} is not a regular file", code="identity_not_a_file") from None
    except ExposedFile as exc:
        raise IdentityError(
            f"{path} is accessible by group or others (mode {exc.mode:04o}); "
            f"anyone who reads it can impersonate this node: run 'chmod 600 {path}'",
            code="identity_insecure",
        ) from None
    try:
        key = _parse_key(data)
    except Exception as exc:
        raise IdentityError(
            f"{path} does not hold a valid Ed25519 identity key ({type(exc).__name__}: {exc}); "
            "restore it from a backup, or delete it to create a new identity (a new peer ID)",
            code="identity_corrupt",
        ) from exc
    return KeyPair(key, key.get_public_key())


def _parse_key(data: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key in ``data``; ``ValueError`` (or a parser's error) for anything else."""
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ValueError("file too large for a key")
    key = deserialize_private_key(data)
    if key.get_type() is not KeyType.Ed25519 or not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"a {key.get_type().name} key, not Ed25519")
    if len(key.to_bytes()) != 32:
        raise ValueError("wrong key length")
    return key
