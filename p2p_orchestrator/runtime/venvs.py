"""Virtual environments for services whose ``requirements.txt`` lists packages.

A service with requirements runs under the interpreter of its own virtual
environment, built when it is installed, in a content-addressed cache::

    home/venvs/<key>/                a plain venv (no system site-packages)
    home/venvs/<key>/requirements.txt   what was installed in it
    home/venvs/<key>/runner-lib/     symlinks to anyio, trio, cbor2 and their dependencies
    home/venvs/<key>/.complete       written last; a directory without it is debris

``key`` is the sha256 of the normalized requirements (comments and blank lines
dropped, sorted, deduplicated) and of the node's interpreter (implementation,
version, path), so every version of every service with the same requirements
shares one environment, and an environment is rebuilt when the node's Python
changes.

The runner needs anyio, trio and cbor2, which the service's requirements need not
list: a ``.pth`` file in the environment's ``site-packages`` puts ``runner-lib``
on ``sys.path`` *after* the service's own packages (so a service may pin its own
version of any of them), and the node's ``p2p_orchestrator`` comes last, as for
every service.  Nothing else of the node's environment is visible.

Packages come from ``[runtime] wheel_dir`` when the operator configures one
(``pip install --no-index --find-links DIR``, with the node's own pip
configuration ignored, so the build is reproducible and offline), else from the
package index as the node's pip is configured.  A requirements file may list
only requirement specifiers: options (``-r``, ``-e``, ``--index-url``...), URLs
and paths are refused (``bad_requirements``), because where packages come from
is the operator's decision.  A failed build (``requirements_failed``, with pip's
last lines) leaves nothing behind.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import trio
from packaging.requirements import InvalidRequirement, Requirement

from p2p_orchestrator.errors import ServiceInstallationError, ServiceManagementError

__all__ = ["VenvCache", "read_requirements"]

log = logging.getLogger("p2p_orchestrator.runtime")

REQUIREMENTS = "requirements.txt"
_RUNNER_NEEDS = ("anyio", "trio", "cbor2")
_COMPLETE = ".complete"
_PTH = "p2p_orchestrator_runner.pth"
_TAIL_LINES = 12
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTRA = re.compile(r"\bextra\s*==")  # a requirement of an optional extra: not needed


def read_requirements(directory: Path) -> tuple[str, ...]:
    """The normalized requirements of the service in ``directory`` (empty: it needs none).

    Raises ``ServiceInstallationError(code="bad_requirements")`` for a line that
    is not a plain requirement specifier.
    """
    try:
        text = (directory / REQUIREMENTS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceInstallationError(f"cannot read {REQUIREMENTS}: {exc}", code="bad_requirements") from exc
    found: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            found.add(_requirement(line, number))
    return tuple(sorted(found))


def _requirement(line: str, number: int) -> str:
    """One line as a PEP 508 requirement: a name, extras, version specifiers and a marker only."""
    refused = ServiceInstallationError(
        f"{REQUIREMENTS} line {number}: {line!r} is not a requirement specifier such as "
        "'package>=1.2'; options, URLs, paths and variables are not allowed (where packages come "
        "from is the node operator's choice: [runtime] wheel_dir)",
        code="bad_requirements",
    )
    if "$" in line or "\\" in line or not _NAME.match(line):  # pip would expand ${VAR}
        raise refused
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        raise refused from None
    if requirement.url is not None or "/" in requirement.name:
        raise refused
    return str(requirement)


def environment_key(requirements: Iterable[str]) -> str:
    """The cache key of an environment with ``requirements`` for the node's interpreter."""
    impl = sys.implementation
    identity = f"{impl.name} {impl.version} {sys.version} {os.path.realpath(sys.executable)}"
    # the runner's own packages are linked in at build time: a new set means a new environment
    text = "\n".join(requirements) + "\n--\n" + identity + "\n--\n" + " ".join(_RUNNER_NEEDS)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class VenvCache:
    """The virtual environments under ``home/venvs``; see the module docstring."""

    def __init__(self, root: Path, *, wheel_dir: str = "", timeout: float = 600.0) -> None:
        self.root = root
        self.wheel_dir = wheel_dir
        self.timeout = timeout
        self._locks: dict[str, trio.Lock] = {}

    def path(self, requirements: tuple[str, ...]) -> Path:
        return self.root / environment_key(requirements)

    def python_for(self, name: str, directory: Path) -> str:
        """The interpreter to run the service in ``directory`` with (the node's if it needs no packages).

        Raises ``ServiceManagementError(code="venv_missing")`` when its
        environment was never built or was removed (starting it builds it again).
        """
        try:
            requirements = read_requirements(directory)
        except ServiceInstallationError as exc:
            raise ServiceManagementError(f"{name}: {exc.message}", code=exc.code) from exc
        if not requirements:
            return sys.executable
        target = self.path(requirements)
        if not (target / _COMPLETE).exists():
            raise ServiceManagementError(
                f"{name}: its virtual environment {target} is missing; start the service to build it again",
                code="venv_missing",
            )
        return str(target / "bin" / "python")

    async def ensure(self, name: str, requirements: tuple[str, ...]) -> Path | None:
        """Build (or reuse) the environment for ``requirements``; its directory, ``None`` if none is needed.

        Raises ``ServiceInstallationError(code="requirements_failed")`` when pip
        fails or takes longer than the timeout; nothing of the attempt remains.
        """
        if not requirements:
            return None
        key = environment_key(requirements)
        target = self.root / key
        async with self._locks.setdefault(key, trio.Lock()):
            if (target / _COMPLETE).exists():
                return target
            log.info("Building the virtual environment of %s in %s", name, target)
            await trio.to_thread.run_sync(_remove, target)  # debris of an interrupted build
            try:
                await self._build(name, target, requirements)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_remove, target)
                raise
        log.info("Virtual environment of %s ready: %s", name, target)
        return target

    async def _build(self, name: str, target: Path, requirements: tuple[str, ...]) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self._run(name, [sys.executable, "-m", "venv", "--without-pip", str(target)], "python -m venv")
        listed = target / REQUIREMENTS
        listed.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        source = ["--no-index", "--find-links", self.wheel_dir] if self.wheel_dir else []
        pip = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target / "bin" / "python"),
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            *source,
            "-r",
            str(listed),
        ]
        await self._run(name, pip, "pip install")
        await trio.to_thread.run_sync(_link_runner_packages, target)
        (target / _COMPLETE).write_text("")

    async def _run(self, name: str, argv: list[str], what: str) -> None:
        env = _build_environment(offline=bool(self.wheel_dir))
        result: subprocess.CompletedProcess[bytes] | None = None
        with trio.move_on_after(self.timeout):
            result = await trio.run_process(
                argv, check=False, capture_stdout=True, capture_stderr=True, stdin=subprocess.DEVNULL, env=env
            )
        if result is None:
            raise ServiceInstallationError(
                f"{name}: installing {REQUIREMENTS} took longer than {self.timeout:g} s ({what})",
                code="requirements_failed",
            )
        if result.returncode != 0:
            output = _scrub((result.stdout + result.stderr).decode(errors="replace")).strip().splitlines()
            tail = "\n".join(output[-_TAIL_LINES:])
            raise ServiceInstallationError(
                f"{name}: installing {REQUIREMENTS} failed ({what} exited with {result.returncode}):\n{tail}",
                code="requirements_failed",
            )

    def prune(self, keep: set[str]) -> list[Path]:
        """Set aside every environment whose key is not in ``keep``; the paths to :meth:`remove`.

        Renaming is instant and happens on the caller's thread, so an
        environment is either fully there or gone for :meth:`ensure`, which
        rebuilds it if a service needs it again.  Builds in progress are left alone.
        """
        if not self.root.is_dir():
            return []
        doomed = []
        for entry in self.root.iterdir():
            lock = self._locks.get(entry.name)
            if entry.name in keep or (lock is not None and lock.locked()):
                continue
            if entry.name.startswith(".trash-"):  # left by an interrupted removal
                doomed.append(entry)
                continue
            trash = self.root / f".trash-{entry.name}-{secrets.token_hex(4)}"
            entry.rename(trash)
            doomed.append(trash)
        return doomed

    @staticmethod
    def remove(paths: Iterable[Path]) -> None:
        """Delete what :meth:`prune` set aside (blocking: run it in a thread)."""
        for path in paths:
            _remove(path)

    @staticmethod
    def key_of(directory: Path) -> str | None:
        """The key of the environment the service in ``directory`` runs in (``None``: the node's)."""
        try:
            requirements = read_requirements(directory)
        except ServiceInstallationError:
            return None
        return environment_key(requirements) if requirements else None


_BUILD_ENVIRONMENT = frozenset({"PATH", "HOME", "LANG", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})


def _build_environment(*, offline: bool) -> dict[str, str]:
    """pip's environment: none of the node's secrets; with wheels of the operator's, none of its pip config."""
    env = {k: v for k, v in os.environ.items() if k.upper() in _BUILD_ENVIRONMENT or k.startswith("LC_")}
    if not offline:  # the index and its credentials are the node's pip configuration
        env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    else:
        env["PIP_CONFIG_FILE"] = os.devnull
    return env


def _scrub(text: str) -> str:
    """pip's output with the values of the node's environment variables blotted out (it may echo them)."""
    for key, value in os.environ.items():
        if len(value) >= 6 and value in text and key not in ("PATH", "HOME", "PWD"):
            text = text.replace(value, f"<{key}>")
    return text


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@functools.cache
def runner_package_dirs() -> tuple[str, ...]:
    """The directories holding :func:`runner_packages` (what a sandboxed service in a venv must read)."""
    return tuple(sorted({str(path.resolve().parent) for path in runner_packages()}))


def runner_packages() -> list[Path]:
    """The top-level files and directories of anyio, trio, cbor2 and what they need, in the node's environment."""
    todo, seen, found = list(_RUNNER_NEEDS), set[str](), set[Path]()
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a dependency for another platform or Python: not installed, not needed
        todo.extend(_needed(requirement) for requirement in dist.requires or [] if _applies(requirement))
        base = Path(str(dist.locate_file("")))
        for file in dist.files or []:
            top = file.parts[0]
            if top not in ("..", "__pycache__") and not top.endswith(".pth"):
                found.add(base / top)
    return sorted(found)


def _needed(requirement: str) -> str:
    match = _NAME.match(requirement)
    return match[0] if match else requirement


def _applies(requirement: str) -> bool:
    """Whether a distribution's requirement applies here (not an extra; its marker holds)."""
    if _EXTRA.search(requirement):
        return False
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # packaging is not installed: take it if it is installed
        return True
    try:
        marker = Requirement(requirement).marker
    except InvalidRequirement:
        return True
    return marker is None or marker.evaluate()


def _link_runner_packages(target: Path) -> None:
    """Give the environment's interpreter the runner's packages, after its own (see the module docstring)."""
    lib = target / "runner-lib"
    lib.mkdir()
    for path in runner_packages():
        (lib / path.name).symlink_to(path)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = target / "lib" / version / "site-packages"
    (site_packages / _PTH).write_text(f"{lib}\n", encoding="utf-8")
