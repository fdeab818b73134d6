"""Files inside a bundle: where they may be, and that they are what the manifest says (sha256).

One implementation of file hashing for the whole project: the loader checks with it, training's writers and
dataset builders record with it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from latent_bridge.service.bundle.manifest import BundleError

CHUNK = 1 << 20


def inside(bundle_dir: Path, relative: str) -> Path:
    path = (bundle_dir / relative).resolve()
    if not path.is_relative_to(bundle_dir.resolve()):
        raise BundleError(f"{bundle_dir / relative}: points outside the bundle")
    if not path.is_file():
        raise BundleError(f"{bundle_dir / relative}: missing")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checked_file(bundle_dir: Path, relative: str, sha256: str) -> Path:
    """The file's path once it is inside the bundle, present and has the manifest's sha256 (hashed in
    chunks: nothing is held in memory)."""
    path = inside(bundle_dir, relative)
    actual = sha256_file(path)
    if actual != sha256:
        raise BundleError(
            f"{bundle_dir / relative}: sha256 {actual[:12]}… does not match the manifest's {sha256[:12]}…"
        )
    return path


def checked_bytes(bundle_dir: Path, relative: str, sha256: str, limit: int, setting: str) -> bytes:
    """The file's bytes once its size is within ``limit`` (checked before reading) and its sha256, hashed
    chunk by chunk as it is read, matches the manifest's."""
    path = inside(bundle_dir, relative)
    size = path.stat().st_size
    if size > limit:
        raise BundleError(f"{bundle_dir / relative}: {size} bytes, over the limit of {limit} ({setting})")
    digest, chunks, read = hashlib.sha256(), [], 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            read += len(chunk)
            if read > limit:
                raise BundleError(f"{bundle_dir / relative}: grew past the limit of {limit} bytes ({setting})")
            digest.update(chunk)
            chunks.append(chunk)
    if digest.hexdigest() != sha256:
        raise BundleError(
            f"{bundle_dir / relative}: sha256 {digest.hexdigest()[:12]}… does not match the manifest's "
            f"{sha256[:12]}…"
        )
    return b"".join(chunks)
