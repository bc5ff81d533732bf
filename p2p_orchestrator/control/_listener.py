"""Creating the control socket file safely, and removing it when the node stops.

* A file already at the path is removed only if it is a socket nobody answers
  on (left by a node that was killed); a live socket means another node uses
  this home (``control_socket_in_use``) and anything else is left alone
  (``control_socket_blocked``).
* The socket is bound under a temporary name, set to mode 0600 and listening
  before it is linked into place, so it is never reachable with a wider mode,
  and ``link`` (unlike ``rename``) never replaces a socket that appeared
  meanwhile.
* On exit it is removed only if the path still names the socket this process
  created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path

from p2p_orchestrator.control.errors import ControlError
from p2p_orchestrator.control.paths import socket_address

__all__ = ["ControlSocketFile", "check_socket_path"]

_BACKLOG = 64
_PROBE_TIMEOUT = 1.0


class ControlSocketFile:
    """The control socket at ``path``: :meth:`open` creates it, :meth:`close` removes it (blocking)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._identity: tuple[int, int] | None = None

    def open(self) -> socket.socket:
        """Create the socket file and return the listening socket; see the module docstring."""
        path = self.path
        check_socket_path(path)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.unlink(missing_ok=True)  # only a dead process with our pid can have left it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with socket_address(temp) as address:
                sock.bind(address)
            try:
                os.chmod(temp, 0o600)
                sock.listen(_BACKLOG)
                identity = _identity(temp)
                os.link(temp, path)
            finally:
                temp.unlink(missing_ok=True)
        except FileExistsError:
            sock.close()
            raise ControlError(
                f"{path} appeared while this node was creating it: is another node starting here?",
                code="control_socket_in_use",
            ) from None
        except BaseException:
            sock.close()
            raise
        self._sock, self._identity = sock, identity
        return sock

    def close(self) -> None:
        """Remove the socket file if it is still ours, and close the socket."""
        if self._identity is not None:
            with contextlib.suppress(FileNotFoundError):
                if _identity(self.path) == self._identity:
                    self.path.unlink()
            self._identity = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _identity(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


def check_socket_path(path: Path) -> None:
    """Make ``path`` free for a new socket: remove a stale socket; refuse a live one or another file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(
            f"{path} exists and is not a socket; move it away to let the node create its control socket",
            code="control_socket_blocked",
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT)
    try:
        with socket_address(path) as address:
            probe.connect(address)
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)  # stale: its node is gone
        return
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise ControlError(f"cannot check {path}: {exc}", code="control_socket_blocked") from exc
    finally:
        probe.close()
    raise ControlError(
        f"a node is already running for this home: it answers on {path}",
        code="control_socket_in_use",
    )
