"""Load and validate a bundle (DESIGN.md §3) into one immutable ``Bundle`` the requests share.

Nothing half-checked is served: the manifest schema, every file's presence and sha256, each ONNX model's
input/output dimensions against the manifest (and a warm-up run), each FAISS index's dimension and size
against its id table. The first problem raises ``BundleError`` naming the file and the reason.

Everything a request needs hangs off one ``Bundle`` object, so a later reload can swap it atomically.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
from latent_bridge.service.gallery import Gallery, open_gallery
from latent_bridge.service.graph import ModalityGraph
from latent_bridge.service.manifest import BundleError, Manifest, ModalitySpec, read_manifest
from latent_bridge.service.settings import DEFAULT_FIDELITY, FidelityCriterion
from latent_bridge.service.translate import Translator

log = logging.getLogger(__name__)
CHUNK = 1 << 20
WARM_UP_BATCH = 64


@dataclass(frozen=True)
class Bundle:
    """A loaded, validated bundle: manifest, translators, galleries and the routing graph."""

    path: Path
    manifest: Manifest
    translators: dict[tuple[str, str], Translator]
    galleries: dict[str, Gallery]
    graph: ModalityGraph
    load_seconds: float = 0.0
    modalities: dict[str, ModalitySpec] = field(init=False)
    l2_inputs: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", {m.name: m for m in self.manifest.modalities})
        object.__setattr__(
            self, "l2_inputs", frozenset(m.name for m in self.manifest.modalities if m.normalization == "l2")
        )

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint


def _inside(bundle_dir: Path, relative: str) -> Path:
    path = (bundle_dir / relative).resolve()
    if not path.is_relative_to(bundle_dir.resolve()):
        raise BundleError(f"{bundle_dir / relative}: points outside the bundle")
    if not path.is_file():
        raise BundleError(f"{bundle_dir / relative}: missing")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checked_file(bundle_dir: Path, relative: str, sha256: str) -> Path:
    """The file's path once it is inside the bundle, present and has the manifest's sha256."""
    path = _inside(bundle_dir, relative)
    actual = _sha256(path)
    if actual != sha256:
        raise BundleError(
            f"{bundle_dir / relative}: sha256 {actual[:12]}… does not match the manifest's {sha256[:12]}…"
        )
    return path


def _open_translators(
    bundle_dir: Path, manifest: Manifest, threads: int
) -> dict[tuple[str, str], Translator]:
    dims = {m.name: m.dim for m in manifest.modalities}
    translators = {}
    for edge in manifest.edges:
        path = _inside(bundle_dir, edge.file)
        model = path.read_bytes()
        if hashlib.sha256(model).hexdigest() != edge.sha256:
            raise BundleError(
                f"{bundle_dir / edge.file}: sha256 does not match the manifest's {edge.sha256[:12]}…"
            )
        translator = Translator(
            edge, model, dims[edge.source], dims[edge.target], bundle_dir / edge.file, threads
        )
        translator.warm_up(bundle_dir / edge.file, WARM_UP_BATCH)
        translators[edge.source, edge.target] = translator
    return translators


def _open_galleries(bundle_dir: Path, manifest: Manifest) -> dict[str, Gallery]:
    galleries = {}
    for spec in manifest.galleries:
        if spec.modality in galleries:
            raise BundleError(f"{bundle_dir / 'manifest.json'}: two galleries for modality {spec.modality!r}")
        checked_file(bundle_dir, spec.index_file, spec.index_sha256)
        checked_file(bundle_dir, spec.ids_file, spec.ids_sha256)
        gallery = open_gallery(spec, bundle_dir, manifest.modality(spec.modality).dim)
        if gallery.size:
            gallery.search(gallery.vector(0), 1)  # warm-up: touch the index once
        galleries[spec.modality] = gallery
    return galleries


def load_bundle(
    bundle_dir: Path,
    criterion: FidelityCriterion = DEFAULT_FIDELITY,
    ort_threads: int = 1,
    faiss_threads: int = 1,
) -> Bundle:
    """Validate and open everything; raise ``BundleError`` on the first problem."""
    started = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle folder (missing)")
    if faiss_threads:
        faiss.omp_set_num_threads(faiss_threads)
    manifest = read_manifest(bundle_dir)
    translators = _open_translators(bundle_dir, manifest, ort_threads)
    galleries = _open_galleries(bundle_dir, manifest)
    graph = ModalityGraph(manifest, criterion)
    seconds = time.perf_counter() - started
    log.info(
        "loaded bundle %s (%d modalities, %d edges, %d galleries) in %.2fs",
        manifest.name,
        len(manifest.modalities),
        len(manifest.edges),
        len(galleries),
        seconds,
    )
    return Bundle(bundle_dir, manifest, translators, galleries, graph, seconds)
