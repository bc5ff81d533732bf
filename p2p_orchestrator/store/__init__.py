"""The versioned on-disk store of installed services.

Layout under a node's home directory::

    state.db                      sqlite: services, versions, desired state
    services/<name>/versions/<d>  one directory per installed version
    services/<name>/current       symlink to the current version (for people; the db is the truth)
    archives/<sha256>.tar.gz      content-addressed cache of installed archives
    staging/                      private work area of installs in progress
    trash/                        directories being deleted

An install unpacks into ``staging/``, moves the finished tree into ``versions/``
and then switches the service to it in one sqlite transaction.  A process killed
at any instant leaves each service fully at its old or fully at its new version;
:meth:`ServiceStore.open` removes whatever an interrupted operation left behind.
"""

from p2p_orchestrator.store.records import ServiceRecord, VersionRecord
from p2p_orchestrator.store.store import ServiceStore, StagedArchive

__all__ = ["ServiceRecord", "ServiceStore", "StagedArchive", "VersionRecord"]
