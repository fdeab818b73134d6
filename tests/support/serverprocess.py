"""A real `latent-bridge serve` process on a free loopback port, for tests that need signals and sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

HOST = "127.0.0.1"
START_TIMEOUT = 60.0


def command() -> list[str]:
    script = Path(sys.executable).with_name("latent-bridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "latent_bridge.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    port: int
    log_file: IO[bytes]

    def log(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (uvicorn re-raises the signal after a clean shutdown: -15)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def rss_mib(pid: int) -> float:
    """The process's resident memory (Linux ``/proc``), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def wait_ready(server: Server, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited early with {server.process.returncode}: {server.log()}")
        try:
            if httpx.get(f"{server.base}/readyz", timeout=1, headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready after {START_TIMEOUT} s: {server.log()}")


@contextmanager
def running_server(
    bundle: Path | None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    cwd: Path | None = None,
    prefix: list[str] | None = None,
) -> Iterator[Server]:
    """Start the server (``bundle`` None: from its environment) in ``cwd``, behind a ``prefix`` command
    (e.g. ``setpriv``) if given; yield it once ready; kill it if left running."""
    port = free_port()
    bundle_args = ["--bundle", str(bundle)] if bundle is not None else []
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty server never blocks on it
        process = subprocess.Popen(
            [*(prefix or []), *command(), "serve", *bundle_args, "--host", HOST, "--port", str(port), *(args or [])],
            env=os.environ | {"LATENT_BRIDGE_LOG_LEVEL": "info"} | (env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        server = Server(process, f"http://{HOST}:{port}", port, log)
        try:
            wait_ready(server)
            yield server
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
