"""Edits of a written bundle for tests that need a damaged or altered one (shared by tests/service and
tests/reliability, which put ``tests/support`` on the path through pytest's ``pythonpath``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


def edit_manifest(bundle: Path, change: Callable[[Manifest], object]) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def rehash(bundle: Path, file: str) -> None:
    """Make the manifest's sha256 of ``file`` match its current bytes (so a later check is reached)."""
    digest = hashlib.sha256((bundle / file).read_bytes()).hexdigest()

    def update(manifest: Manifest) -> None:
        for edge in manifest["edges"]:
            if edge["file"] == file:
                edge["sha256"] = digest
        for g in manifest["galleries"]:
            for key in ("index", "ids"):
                if g[f"{key}_file"] == file:
                    g[f"{key}_sha256"] = digest

    edit_manifest(bundle, update)
