"""requirements.txt: a virtual environment per set of requirements, from a local wheel directory."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator, ServiceInstallationError
from p2p_orchestrator.runtime.venvs import read_requirements
from tests.runtime.support import fast_config, service_archive

USES_TINYLIB = """
import tinylib

class Run(BaseService):
    @service_method()
    async def where(self):
        try:
            import libp2p  # the node has it; a service with its own environment must not see it
        except ImportError:
            node_packages_visible = False
        else:
            node_packages_visible = True
        return {"value": tinylib.VALUE, "prefix": sys.prefix, "node_packages": node_packages_visible}
"""


def build_wheel(directory: Path, name: str, version: str, source: str) -> Path:
    """A minimal pure-Python wheel, written by hand: no network, no build backend."""
    directory.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            data = text.encode()
            wheel.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        wheel.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    build_wheel(directory, "tinylib", "1.0", "VALUE = 42\n")
    return directory


def environments(home: Path) -> list[Path]:
    root = home / "venvs"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


async def test_a_service_gets_an_isolated_environment_built_from_the_wheel_dir_and_reused(
    home: Path, tmp_path: Path, wheels: Path
) -> None:
    async with Orchestrator(home, config=fast_config(wheel_dir=str(wheels))) as orch:
        files = {"requirements.txt": "# what we need\ntinylib==1.0\n\n"}
        await orch.install_service(service_archive(tmp_path, "first", USES_TINYLIB, files=files))
        await orch.start_service("first")
        info = await orch.get_service_info("first")
        answer = await orch.rpc.call("first/where", {})
        assert answer == {"value": 42, "prefix": info["venv"], "node_packages": False}
        [venv] = environments(home)
        assert str(venv) == info["venv"]
        built = (venv / ".complete").stat().st_mtime_ns

        files = {"requirements.txt": "tinylib==1.0   # the same, written differently\n"}
        await orch.install_service(service_archive(tmp_path, "second", USES_TINYLIB, files=files))
        await orch.start_service("second")
        assert (await orch.get_service_info("second"))["venv"] == info["venv"]
        assert environments(home) == [venv] and (venv / ".complete").stat().st_mtime_ns == built
        assert (await orch.rpc.call("second/where", {}))["value"] == 42

        await orch.uninstall_service("first")
        assert environments(home) == [venv]  # still used by "second"
        await orch.uninstall_service("second")
        assert environments(home) == []


async def test_requirements_that_cannot_be_installed_refuse_the_install_cleanly(
    home: Path, tmp_path: Path, wheels: Path
) -> None:
    async with Orchestrator(home, config=fast_config(wheel_dir=str(wheels))) as orch:
        await orch.install_service(service_archive(tmp_path, "needy", "class Run(BaseService):\n    pass\n"))
        await orch.start_service("needy")
        files = {"requirements.txt": "tinylib==1.0\nnot-in-the-wheel-dir==9.9\n"}
        upgrade = service_archive(tmp_path, "needy", USES_TINYLIB, version="2.0.0", files=files)
        with pytest.raises(ServiceInstallationError) as raised:
            await orch.install_service(upgrade)
        assert raised.value.code == "requirements_failed"
        assert raised.value.message.startswith(
            "needy: installing requirements.txt failed (pip install exited"
        )
        assert "not-in-the-wheel-dir" in raised.value.message  # pip's own words
        info = await orch.get_service_info("needy")  # nothing switched: 1.0.0 runs on
        assert (info["version"], info["state"], len(info["versions"])) == ("1.0.0", "running", 1)
        assert list((home / "venvs").iterdir()) == []


def test_requirements_are_normalized_and_only_plain_specifiers_are_allowed(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# c\nb>=1\n\na  ==  2 ; python_version >= '3'\nb>=1\n")
    assert read_requirements(tmp_path) == ('a==2; python_version >= "3"', "b>=1")
    for line in (
        "-e git+https://x/y",
        "--index-url http://evil/",
        "pkg @ https://x/y.whl",
        "./local",
        "-r o",
        "file:/abs/x.whl",  # each of these passed the older prefix filter
        "x/../../../abs/x.whl",
        "nosuchpkg${NODE_SECRET}",
        "pkg==1.0 --hash=sha256:00",
        "pkg\\x",
    ):
        (tmp_path / "requirements.txt").write_text(f"{line}\n")
        with pytest.raises(ServiceInstallationError) as raised:
            read_requirements(tmp_path)
        assert raised.value.code == "bad_requirements"
    assert read_requirements(tmp_path / "nowhere") == ()


def test_what_pip_prints_is_scrubbed_of_the_nodes_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from p2p_orchestrator.runtime.venvs import _build_environment, _scrub

    monkeypatch.setenv("NODE_SECRET", "s3cr3t-value")
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:pw@index.example/simple")
    said = "ERROR: No matching distribution found for nosuchpkgs3cr3t-value"
    assert _scrub(said) == "ERROR: No matching distribution found for nosuchpkg<NODE_SECRET>"
    offline, online = _build_environment(offline=True), _build_environment(offline=False)
    assert "NODE_SECRET" not in offline and "NODE_SECRET" not in online
    assert offline["PIP_CONFIG_FILE"] == os.devnull and "PIP_INDEX_URL" not in offline
    assert online["PIP_INDEX_URL"] == "https://user:pw@index.example/simple"  # the operator's own index
