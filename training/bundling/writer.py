"""Write a bundle atomically: everything goes to a temp folder beside the target, then one rename.

A crash at any point leaves either no bundle or a whole one, never half of one; an existing bundle is
never overwritten (bundles are immutable, a new run writes a new name).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
from latent_bridge.service.bundle.loader import Bundle, load_bundle
from latent_bridge.service.bundle.manifest import (
    INDEX_DIR,
    SCHEMA_VERSION,
    TRANSLATORS_DIR,
    EdgeMetrics,
    EdgeSpec,
    FinalFit,
    GallerySpec,
    IndexType,
    Lineage,
    Manifest,
    ModalitySpec,
    edge_key,
    translator_file,
    write_manifest,
)
from latent_bridge.training.bundling.galleries import in_memory_rows, write_gallery_files
from latent_bridge.training.bundling.pivots import RouteChoice, build_pivot_gallery, with_hubness
from latent_bridge.training.datasets.reader import ModalityData

VERSIONED_PACKAGES = ("latent-bridge", "torch", "onnx", "onnxruntime", "faiss-cpu", "numpy")


class BundleWriteError(ValueError):
    """The bundle could not be written (disk full); the temp folder is gone and nothing is half-written."""


class BundleExistsError(FileExistsError):
    pass


@dataclass(frozen=True)
class EdgeArtifact:
    """A trained, verified edge ready to be written: ONNX bytes and its held-out metrics."""

    source: str
    target: str
    kind: str
    onnx_bytes: bytes
    metrics: EdgeMetrics
    candidates: dict[str, EdgeMetrics]
    fit: FinalFit | None = None

    @property
    def key(self) -> str:
        return edge_key(self.source, self.target)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


OWNER_FILE = ".owner-pid"  # inside a temp folder: the writing process, so a later run can tell it is stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: someone else's live process
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove temp folders of ``out`` left by runs that were killed (their writing process is gone)."""
    removed = []
    for staging in out.parent.glob(f".{out.name}.tmp-*"):
        try:
            pid = int((staging / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge: no owner recorded
        if not _alive(pid):
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


@contextmanager
def staged_bundle(out: Path) -> Iterator[Path]:
    """Yield a temp folder; on success rename it to ``out``, on any failure remove it."""
    out = Path(out)
    if out.exists():
        raise BundleExistsError(f"{out}: a bundle already exists there; bundles are immutable, pick a new name")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (staging / OWNER_FILE).write_text(str(os.getpid()))
        (staging / TRANSLATORS_DIR).mkdir()
        (staging / INDEX_DIR).mkdir()
        yield staging
        (staging / OWNER_FILE).unlink()
        os.rename(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BundleWriteError(f"{out}: no space left while writing the bundle; nothing was written") from exc
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return sha256_bytes(data)


def write_gallery(staging: Path, data: ModalityData, index_type: IndexType) -> GallerySpec:
    """A training modality's own rows as its gallery (``latent-bridge index`` replaces it with a corpus)."""
    columns = pa.Table.from_pandas(
        pd.DataFrame({"sample": data.samples}).join(data.payload), preserve_index=False
    )
    rows = in_memory_rows(data.name, data.path.name, data.ids, data.embeddings, columns)
    return write_gallery_files(staging, rows, index_type)


def edge_spec(staging: Path, artifact: EdgeArtifact) -> EdgeSpec:
    file = translator_file(artifact.source, artifact.target)
    digest = _write(staging / file, artifact.onnx_bytes)
    return EdgeSpec(
        source=artifact.source,
        target=artifact.target,
        kind=artifact.kind,  # type: ignore[arg-type]
        file=file,
        sha256=digest,
        metrics=artifact.metrics,
        candidates=artifact.candidates,
        fit=artifact.fit,
    )


def modality_spec(data: ModalityData, description: str = "") -> ModalitySpec:
    return ModalitySpec(name=data.name, dim=data.dim, description=description)


@dataclass(frozen=True)
class Parent:
    """A bundle a new one grows from: its edges and galleries are carried over byte for byte."""

    path: Path
    manifest: Manifest

    def carry(self, staging: Path, routes: bool = False) -> None:
        """Copy the edges and galleries; with ``routes`` also the pivot galleries and hubness files (for a
        bundle whose graph does not change, such as one that only gains encoders)."""
        files = [e.file for e in self.manifest.edges] + [f for g in self.manifest.galleries for f, _ in g.files()]
        if routes:
            files += [f for p in self.manifest.pivot_galleries for f, _ in p.files()]
            files += [f for r in self.manifest.routes for f, _ in r.files()]
        for file in files:
            (staging / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path / file, staging / file)


def write_bundle(
    out: Path,
    data: dict[str, ModalityData],
    artifacts: list[EdgeArtifact],
    dataset_fingerprint: str,
    training: dict[str, object],
    index_type: IndexType = "flat",
    parent: Parent | None = None,
    strategies: Callable[[Bundle], list[RouteChoice]] | None = None,
) -> Manifest:
    """Write a bundle from trained edges plus a gallery for each modality in ``data`` that lacks one.

    With a ``parent``, its modalities, edges and galleries come first, unchanged, and the lineage says so;
    its route strategies come back only through ``strategies`` (routes may change with new edges).
    ``strategies`` chooses each route's retrieval strategy from the staged bundle; the pivot galleries
    they need are built from it.
    """
    inherited = parent.manifest if parent else None
    old_modalities = list(inherited.modalities) if inherited else []
    old_galleries = list(inherited.galleries) if inherited else []
    known = {m.name for m in old_modalities}
    with_gallery = {g.modality for g in old_galleries}
    with staged_bundle(out) as staging:
        if parent:
            parent.carry(staging)
        manifest = Manifest(
            schema_version=SCHEMA_VERSION,
            name=Path(out).name,
            created_at=datetime.now(UTC),
            modalities=old_modalities + [modality_spec(data[m]) for m in sorted(data) if m not in known],
            edges=(list(inherited.edges) if inherited else []) + [edge_spec(staging, a) for a in artifacts],
            galleries=old_galleries
            + [write_gallery(staging, data[m], index_type) for m in sorted(data) if m not in with_gallery],
            dataset_fingerprint=dataset_fingerprint,
            versions=package_versions(),
            training=training,
            lineage=Lineage(
                parent=inherited.name if inherited else None,
                parent_fingerprint=inherited.fingerprint if inherited else None,
                new_edges=[a.key for a in artifacts],
            ),
        )
        write_manifest(manifest, staging)
        bundle = load_bundle(staging)  # the service's own loader checks the contract before the rename
        if strategies is not None:
            manifest = with_pivots(staging, bundle, strategies(bundle))
    return manifest


def with_pivots(staging: Path, bundle: Bundle, choices: list[RouteChoice]) -> Manifest:
    """The staged bundle's manifest with the chosen routes, the pivot galleries they search and their
    hubness files, written and checked."""
    needed = sorted({(c.spec.target, c.spec.pivot) for c in choices})
    pivots = [build_pivot_gallery(staging, bundle, modality, pivot) for modality, pivot in needed]
    routes = [with_hubness(staging, bundle, c) for c in choices]
    manifest = bundle.manifest.model_copy(update={"routes": routes, "pivot_galleries": pivots})
    manifest = Manifest.model_validate(manifest.model_dump())
    write_manifest(manifest, staging)
    load_bundle(staging)
    return manifest
