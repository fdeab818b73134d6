"""milvus-lite (Milvus embedded in a local file) as a server on a loopback port, and bundles whose galleries
are pushed into it: what the tests run the Milvus backend against (the milvus extra installs both)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serverprocess import HOST, free_port

START_TIMEOUT = 60.0


def missing() -> str | None:
    """Why the Milvus backend cannot be tested here (None when it can)."""
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as exc:
        return f"the milvus extra is not installed ({exc.name}): pip install 'latent-bridge[milvus]'"
    return None


class LiteServer:
    """One milvus-lite process on ``port`` serving the data folder ``data``: stop (SIGKILL) and start again."""

    def __init__(self, data: Path, port: int | None = None) -> None:
        self.data, self.port = data, port or free_port()
        self.uri = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data),
                   "--host", HOST, "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"milvus-lite exited with {self.process.returncode} on {self.uri}")
            with socket.socket() as s:
                if s.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"milvus-lite not listening on {self.uri} after {START_TIMEOUT} s")

    def kill(self) -> None:
        """SIGKILL: Milvus gone at once, as in a crash (its write-ahead log keeps what it acknowledged)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def lite_server(db: Path) -> Iterator[LiteServer]:
    server = LiteServer(db)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def push_bundle(bundle: Path, out: Path, uri: str) -> Path:
    """A copy of ``bundle`` whose galleries are also in Milvus at ``uri``, in collections of their own
    (fresh names, so tests that write never see each other's items)."""
    from latent_bridge.service.bundle.manifest import read_manifest, write_manifest
    from latent_bridge.service.galleries.faiss_gallery import open_gallery
    from latent_bridge.training.bundling.milvus_push import MilvusTarget, push_gallery

    shutil.copytree(bundle, out)
    manifest = read_manifest(out)
    target = MilvusTarget(uri, prefix=f"t{uuid.uuid4().hex[:12]}_")
    galleries = [
        push_gallery(open_gallery(g, out, manifest, replay=False), out.name, target) for g in manifest.galleries
    ]
    write_manifest(manifest.model_copy(update={"galleries": galleries}), out)
    return out


def milvus_env(uri: str) -> dict[str, str]:
    return {"LATENT_BRIDGE_GALLERY_BACKEND": "milvus", "LATENT_BRIDGE_MILVUS_URI": uri}


def collections(manifest_dir: Path) -> dict[str, str]:
    manifest = json.loads((manifest_dir / "manifest.json").read_text())
    return {g["modality"]: g["milvus"]["name"] for g in manifest["galleries"] if g.get("milvus")}
