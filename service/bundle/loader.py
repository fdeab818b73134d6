"""Load and validate a bundle (docs/architecture.md, "Bundle") into one immutable ``Bundle`` the requests share.

Nothing half-checked is served: the manifest schema, every file's presence and sha256, each ONNX model's
input/output dimensions against the manifest (and a warm-up run), each FAISS index's dimension and size
against its id table. The first problem raises ``BundleError`` naming the file and the reason.

Everything a request needs hangs off one ``Bundle`` object, so a later reload can swap it atomically.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import faiss
import numpy as np
from latent_bridge.service.bundle.files import checked_bytes, checked_file
from latent_bridge.service.bundle.manifest import (
    MAX_MANIFEST_BYTES,
    BundleError,
    GallerySpec,
    Manifest,
    ModalitySpec,
    PivotGallerySpec,
    RouteStrategySpec,
    read_manifest,
)
from latent_bridge.service.bundle.onnxcheck import MalformedModel, external_tensors
from latent_bridge.service.engine.graph import ModalityGraph
from latent_bridge.service.engine.translate import Translator, run_route
from latent_bridge.service.errors import NoGallery
from latent_bridge.service.galleries.backend import GalleryBackend
from latent_bridge.service.galleries.faiss_gallery import Gallery, attach_writes, open_gallery
from latent_bridge.service.galleries.media import Media, open_media
from latent_bridge.service.galleries.milvus_gallery import MilvusGallery, MilvusLink, shared_link
from latent_bridge.service.inputs.batching import Batchers
from latent_bridge.service.inputs.encoders import Encoder, open_encoders
from latent_bridge.service.settings import DEFAULT_FIDELITY, FidelityCriterion, Settings

log = logging.getLogger(__name__)
WARM_UP_BATCH = 64


@dataclass(frozen=True)
class Bundle:
    """A loaded, validated bundle: manifest, translators, galleries and the routing graph."""

    path: Path
    manifest: Manifest
    translators: dict[tuple[str, str], Translator]
    galleries: dict[str, GalleryBackend]
    graph: ModalityGraph
    load_seconds: float = 0.0
    encoders: dict[str, Encoder] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    pivots: dict[tuple[str, str], Gallery] = field(default_factory=dict)
    hubness: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)  # per route path: CSLS means
    # The encoders' batchers (service/inputs/batching.py): started by the first raw queries, stopped by close().
    batchers: Batchers = field(default_factory=Batchers, compare=False, repr=False)
    modalities: dict[str, ModalitySpec] = field(init=False)
    strategies: dict[tuple[str, ...], RouteStrategySpec] = field(init=False)
    l2_inputs: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", {m.name: m for m in self.manifest.modalities})
        object.__setattr__(self, "l2_inputs", l2_inputs(self.manifest))
        object.__setattr__(self, "strategies", {tuple(r.path): r for r in self.manifest.routes})

    def close(self) -> None:
        """Stop the encoders' batcher threads (once the bundle is replaced or the app stops); requests still
        holding the bundle run its encoders unbatched."""
        self.batchers.close()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    def gallery(self, modality: str) -> GalleryBackend:
        """The gallery of ``modality``: ``UnknownModality`` or ``NoGallery`` (naming those there are) otherwise."""
        self.graph.require(modality)
        found = self.galleries.get(modality)
        if found is None:
            raise NoGallery(
                f"modality {modality!r} has no gallery; galleries: {sorted(self.galleries)}",
                galleries=sorted(self.galleries),
            )
        return found


@dataclass(frozen=True)
class LoadLimits:
    """What a bundle may cost to load; files over a size limit are refused before a byte is read."""

    manifest_bytes: int = MAX_MANIFEST_BYTES
    translator_bytes: int = 256 << 20
    encoder_threads: int = 1  # not a limit, but read from the settings at the same two places
    warm_up_seconds: float = 10.0
    milvus: MilvusLink | None = None  # galleries are served from their Milvus collections through it


def load_limits(settings: Settings) -> LoadLimits:
    milvus = None
    if settings.gallery_backend == "milvus" and settings.milvus_uri:
        token = None if settings.milvus_token is None else settings.milvus_token.get_secret_value()
        milvus = shared_link(settings.milvus_uri, token, settings.milvus_timeout)
    return LoadLimits(
        manifest_bytes=settings.max_manifest_bytes,
        translator_bytes=settings.max_translator_bytes,
        encoder_threads=settings.encoder_threads,
        warm_up_seconds=settings.load_timeout,
        milvus=milvus,
    )


def _open_translators(
    bundle_dir: Path, manifest: Manifest, threads: int, limits: LoadLimits
) -> dict[tuple[str, str], Translator]:
    dims = {m.name: m.dim for m in manifest.modalities}
    translators = {}
    for edge in manifest.edges:
        model = checked_bytes(bundle_dir, edge.file, edge.sha256, limits.translator_bytes, "max_translator_bytes")
        try:
            external = external_tensors(model)
        except MalformedModel as exc:
            raise BundleError(f"{bundle_dir / edge.file}: not a loadable ONNX model (protobuf: {exc})") from exc
        if external:
            raise BundleError(
                f"{bundle_dir / edge.file}: tensor(s) {external[:5]} keep their data in another file "
                "(ONNX external data); a translator must be one self-contained file"
            )
        translator = Translator(
            edge, model, dims[edge.source], dims[edge.target], bundle_dir / edge.file, threads
        )
        del model
        translator.warm_up(bundle_dir / edge.file, WARM_UP_BATCH, limits.warm_up_seconds)
        translators[edge.source, edge.target] = translator
    return translators


def _open_galleries(bundle_dir: Path, manifest: Manifest, milvus: MilvusLink | None) -> dict[str, GalleryBackend]:
    """The bundle's galleries: with ``milvus``, those whose manifest entry names a collection are searched
    there (connected lazily: Milvus unreachable at start leaves the server up but not ready, with the
    reason), the others in FAISS from the bundle's files."""
    galleries: dict[str, GalleryBackend] = {}
    for spec in manifest.galleries:
        if spec.modality in galleries:
            raise BundleError(f"{bundle_dir / 'manifest.json'}: two galleries for modality {spec.modality!r}")
        if milvus is not None and spec.milvus is not None:
            galleries[spec.modality] = MilvusGallery(spec, manifest.modality(spec.modality).dim, milvus)
            continue
        for relative, digest in spec.files():
            checked_file(bundle_dir, relative, digest)
        gallery = open_gallery(spec, bundle_dir, manifest, replay=False)  # replayed once mirrored (``_writes_on``)
        if gallery.size:
            gallery.search(gallery.vector(0), 1)  # warm-up: touch the index once
        galleries[spec.modality] = gallery
    return galleries


def _open_pivots(bundle_dir: Path, manifest: Manifest) -> dict[tuple[str, str], Gallery]:
    """Each pivot gallery, opened read-only as a gallery of the pivot's space over its items' id table."""
    items = {g.modality: g for g in manifest.galleries}
    pivots = {}
    for p in manifest.pivot_galleries:
        base = items[p.modality]
        where = bundle_dir / p.index_file
        if p.items_sha256 != base.ids_sha256 or p.size != base.size:
            raise BundleError(f"{where}: built from another {p.modality!r} gallery than the bundle's "
                              f"(rebuild the bundle, or drop its pivot galleries)")
        for relative, digest in p.files():
            checked_file(bundle_dir, relative, digest)
        pivots[p.modality, p.pivot] = open_gallery(pivot_gallery_spec(p, base), bundle_dir, manifest, replay=False)
    return pivots


def pivot_gallery_spec(p: PivotGallerySpec, base: GallerySpec) -> GallerySpec:
    """A pivot gallery as a gallery of the pivot's space: its own index and rows over its items' id table."""
    return GallerySpec(
        modality=p.pivot, index_file=p.index_file, index_sha256=p.index_sha256, ids_file=base.ids_file,
        ids_sha256=base.ids_sha256, size=p.size, vectors_file=p.vectors_file, vectors_sha256=p.vectors_sha256,
        lookup_file=base.lookup_file, lookup_sha256=base.lookup_sha256, index_type=p.index_type, search=p.search,
    )


def l2_inputs(manifest: Manifest) -> frozenset[str]:
    """Modalities whose translators expect unit-norm inputs."""
    return frozenset(m.name for m in manifest.modalities if m.normalization == "l2")


def _writes_on(bundle_dir: Path, manifest: Manifest, galleries: dict[str, GalleryBackend],
               pivots: dict[tuple[str, str], Gallery], translators: dict[tuple[str, str], Translator],
               graph: ModalityGraph) -> None:
    """Mirror each FAISS gallery's writes into its pivot galleries (its items translated by the edge into
    the pivot), then replay its logged writes, so the pivot galleries hold its items after writes too."""
    l2 = l2_inputs(manifest)
    for modality, gallery in galleries.items():
        if not isinstance(gallery, Gallery):
            continue  # Milvus: its routes chain, its pivot galleries are never searched
        for (items, pivot), mirror in pivots.items():
            if items == modality and graph.graph.has_edge(items, pivot):  # no edge: nothing to translate with
                edge = graph.along([items, pivot], items, pivot)
                gallery.mirror_into(mirror, partial(run_route, translators, edge, l2_inputs=l2))
        attach_writes(gallery, bundle_dir, manifest)


def _open_hubness(bundle_dir: Path, manifest: Manifest, pivots: dict[tuple[str, str], Gallery]
                  ) -> dict[tuple[str, ...], np.ndarray]:
    """Per route with CSLS, its items' neighbourhood means, one per row of the pivot gallery."""
    found = {}
    for r in manifest.routes:
        if r.hubness_file is None or r.hubness_sha256 is None:
            continue
        path = checked_file(bundle_dir, r.hubness_file, r.hubness_sha256)
        if r.bank_file is not None and r.bank_sha256 is not None:  # read only when the gallery is rebuilt
            checked_file(bundle_dir, r.bank_file, r.bank_sha256)
        pivot = pivots.get((r.target, r.pivot))
        means = np.load(path, allow_pickle=False)
        if pivot is None or means.dtype != np.float32 or means.shape != (pivot.size,):
            raise BundleError(f"{path}: {means.dtype} {means.shape}, expected float32 per row of the "
                              f"{r.target!r} pivot gallery in {r.pivot!r} space")
        found[tuple(r.path)] = means
    return found


def load_bundle(
    bundle_dir: Path,
    criterion: FidelityCriterion = DEFAULT_FIDELITY,
    ort_threads: int = 1,
    faiss_threads: int = 1,
    limits: LoadLimits | None = None,
) -> Bundle:
    """Validate and open everything; raise ``BundleError`` on the first problem, whatever it is: an
    unreadable file (permissions, a name too long, ...) too, naming the file, never another exception."""
    try:
        return _load(Path(bundle_dir), criterion, ort_threads, faiss_threads, limits or LoadLimits())
    except BundleError:
        raise
    except OSError as exc:
        where = exc.filename if exc.filename is not None else bundle_dir
        raise BundleError(f"{where}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except Exception as exc:  # a library's own exception on a file it could not parse
        log.debug("bundle %s failed to load", bundle_dir, exc_info=True)
        raise BundleError(f"{bundle_dir}: cannot be loaded ({type(exc).__name__}: {str(exc)[:300]})") from None


def _load(
    bundle_dir: Path, criterion: FidelityCriterion, ort_threads: int, faiss_threads: int, limits: LoadLimits
) -> Bundle:
    started = time.perf_counter()
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle folder (missing)")
    if faiss_threads:
        faiss.omp_set_num_threads(faiss_threads)
    manifest = read_manifest(bundle_dir, limits.manifest_bytes)
    translators = _open_translators(bundle_dir, manifest, ort_threads, limits)
    graph = ModalityGraph(manifest, criterion)
    galleries = _open_galleries(bundle_dir, manifest, limits.milvus)
    pivots = _open_pivots(bundle_dir, manifest)
    _writes_on(bundle_dir, manifest, galleries, pivots, translators, graph)
    hubness = _open_hubness(bundle_dir, manifest, pivots)
    encoders = open_encoders(bundle_dir, manifest, limits.encoder_threads)
    media = open_media(bundle_dir, manifest)
    seconds = time.perf_counter() - started
    log.info(
        "loaded bundle %s (%d modalities, %d edges, %d galleries) in %.2fs",
        manifest.name,
        len(manifest.modalities),
        len(manifest.edges),
        len(galleries),
        seconds,
    )
    return Bundle(bundle_dir, manifest, translators, galleries, graph, seconds, encoders, media, pivots, hubness)
