"""Loading a service in its child process: import ``main.py``, find ``Run``, instantiate it.

``Run`` is created as P2P Core's loader created it, ``Run(name, proxy)``, when its
``__init__`` accepts those two arguments (``BaseService``'s own does), else as
``Run(name)`` or ``Run()``, whichever its signature takes.

Every way this can go wrong becomes a :class:`ServiceManagementError` whose code
says which (``import_failed``, ``import_exited``, ``no_run_class``,
``not_a_service``, ``instantiation_failed``, ``out_of_memory``) and whose
message tells the service's author what to fix.  The traceback goes to the
service's log (stderr).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any

from p2p_orchestrator.errors import ServiceManagementError
from p2p_orchestrator.framework import BaseService

__all__ = ["isolate_path", "load_service"]


def isolate_path(service_dir: Path, package_root: Path) -> None:
    """Give the service a clean ``sys.path``: its own directory, the interpreter's, then ours.

    The interpreter runs with ``-I``, so what is on ``sys.path`` already is the
    standard library and the environment's site-packages only.
    """
    base = [p for p in sys.path if p and Path(p) not in (service_dir, package_root)]
    sys.path[:] = [str(service_dir), *base, str(package_root)]
    importlib.invalidate_caches()


def _short(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (
            f"{Path(f.filename).name}:{f.lineno}"
            for f in reversed(frames)
            if "p2p_orchestrator" not in f.filename
        ),
        "",
    )
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{text} (at {where})" if where else text


def load_service(name: str, service_dir: Path, proxy: Any = None) -> BaseService:
    """Import ``service_dir/main.py`` as module ``main`` and return a new ``Run`` (see the module docstring)."""
    main_py = service_dir / "main.py"
    try:
        module = importlib.import_module("main")
    except SystemExit as exc:
        raise ServiceManagementError(
            f"{name}: main.py called sys.exit({exc.code!r}) while being imported; "
            "a service must not exit at import time",
            code="import_exited",
        ) from None
    except MemoryError:
        raise ServiceManagementError(
            f"{name}: ran out of memory while importing main.py (see the memory limit)", code="out_of_memory"
        ) from None
    except BaseException as exc:
        traceback.print_exc()
        raise ServiceManagementError(
            f"{name}: importing main.py failed: {_short(exc)}; the traceback is in the service's log",
            code="import_failed",
        ) from None
    if Path(getattr(module, "__file__", "") or "").resolve() != main_py.resolve():
        raise ServiceManagementError(
            f"{name}: 'import main' found {getattr(module, '__file__', None)} instead of {main_py}",
            code="import_failed",
        )
    run = getattr(module, "Run", None)
    if run is None:
        raise ServiceManagementError(
            f"{name}: main.py defines no class 'Run'; add 'class Run(BaseService): ...' "
            "(from service_framework import BaseService)",
            code="no_run_class",
        )
    if not (isinstance(run, type) and issubclass(run, BaseService)):
        raise ServiceManagementError(
            f"{name}: main.py's 'Run' is {run!r}, not a subclass of service_framework.BaseService",
            code="not_a_service",
        )
    args = _constructor_arguments(run, name, proxy)
    shown = ", ".join(("name", "proxy")[: len(args)])
    try:
        instance = run(*args)
    except BaseException as exc:
        traceback.print_exc()
        raise ServiceManagementError(
            f"{name}: Run({shown}) raised {_short(exc)}; the traceback is in the service's log",
            code="instantiation_failed",
        ) from None
    if not isinstance(instance, BaseService):
        raise ServiceManagementError(f"{name}: Run() did not return a BaseService", code="not_a_service")
    return instance


def _constructor_arguments(run: type, name: str, proxy: Any) -> tuple[Any, ...]:
    """``(name, proxy)``, ``(name,)`` or ``()``: the first that ``Run``'s signature accepts."""
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):  # no signature to read (a C-level __init__): the plain call
        return ()
    for args in ((name, proxy), (name,)):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return args
    return ()
