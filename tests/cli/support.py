"""Running the real console script and real node processes, with deadlines and no sleeps."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI = Path(sys.executable).with_name("p2p-orchestrator")
FAST_CONFIG = """\
[store]
fsync = false

[runtime]
stop_timeout = 3.0

[node]
dial_timeout = 3.0
reconnect_delay = 0.1
reconnect_max_delay = 1.0
"""


@dataclass
class Result:
    """What one CLI call did."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        command = " ".join(self.args)
        return f"$ p2p-orchestrator {command}\nexit {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def run_cli(*args: str, home: Path | None = None, cwd: Path | None = None, timeout: float = 60.0) -> Result:
    """Run ``p2p-orchestrator [--home HOME] ARGS`` to the end."""
    full = (*(("--home", str(home)) if home is not None else ()), *args)
    env = {k: v for k, v in os.environ.items() if k != "P2P_ORCHESTRATOR_HOME"}
    env["COLUMNS"] = "200"  # tables wide enough for peer IDs on one line
    done = subprocess.run(
        [str(CLI), *full], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )
    return Result(full, done.returncode, done.stdout, done.stderr)


@dataclass
class NodeProcess:
    """A ``p2p-orchestrator node`` process and what it announced."""

    home: Path
    proc: subprocess.Popen[bytes]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def peer_id(self) -> str:
        return str(self.info["peer_id"])

    @property
    def address(self) -> str:
        return str(self.info["listen_addrs"][0])

    def cli(self, *args: str, timeout: float = 60.0) -> Result:
        return run_cli(*args, home=self.home, timeout=timeout)

    def ok(self, *args: str, timeout: float = 60.0) -> Any:
        """Run a command with ``--json``; assert it succeeded, return its JSON."""
        result = self.cli(*args, "--json", timeout=timeout)
        assert result.code == 0, str(result)
        return result.json()

    def log(self) -> str:
        return (self.home.parent / f"{self.home.name}.stderr").read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def start_node(home: Path, *extra: str, deadline: float = 60.0, config: str = FAST_CONFIG) -> NodeProcess:
    """Start a node in ``home`` and wait (bounded) for the JSON line it prints once its socket is up."""
    home.mkdir(parents=True, exist_ok=True)
    if config and not (home / "config.toml").exists():
        (home / "config.toml").write_text(config)
    stderr = open(home.parent / f"{home.name}.stderr", "wb")  # noqa: SIM115 -- the child keeps it
    env = {k: v for k, v in os.environ.items() if k != "P2P_ORCHESTRATOR_HOME"}
    proc = subprocess.Popen(
        [str(CLI), "--home", str(home), "node", "--listen", "/ip4/127.0.0.1/tcp/0", "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
    )
    stderr.close()
    node = NodeProcess(home, proc)
    try:
        node.info = json.loads(_read_line(proc, deadline))
    except BaseException:
        node.stop()
        raise
    return node


def read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    """The next line ``proc`` prints (without its newline), waiting at most ``deadline`` seconds."""
    return _read_line(proc, deadline)


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    end = time.monotonic() + deadline
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the node did not announce itself within {deadline} s")
            if selector.select(left):
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the node exited (code {proc.wait()}) before announcing itself")
                buffer += chunk
    return buffer.split(b"\n", 1)[0]
