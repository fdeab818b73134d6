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
from latent_bridge.service.encoders import Encoder, open_encoders
from latent_bridge.service.errors import NoGallery
from latent_bridge.service.gallery import open_gallery
from latent_bridge.service.gallery_backend import GalleryBackend
from latent_bridge.service.graph import ModalityGraph
from latent_bridge.service.manifest import MAX_MANIFEST_BYTES, BundleError, Manifest, ModalitySpec, read_manifest
from latent_bridge.service.media import Media, open_media
from latent_bridge.service.milvus_gallery import MilvusGallery, MilvusLink, shared_link
from latent_bridge.service.onnxcheck import MalformedModel, external_tensors
from latent_bridge.service.settings import DEFAULT_FIDELITY, FidelityCriterion, Settings
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
    galleries: dict[str, GalleryBackend]
    graph: ModalityGraph
    load_seconds: float = 0.0
    encoders: dict[str, Encoder] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
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
    """The file's path once it is inside the bundle, present and has the manifest's sha256 (hashed in
    chunks: nothing is held in memory)."""
    path = _inside(bundle_dir, relative)
    actual = _sha256(path)
    if actual != sha256:
        raise BundleError(
            f"{bundle_dir / relative}: sha256 {actual[:12]}… does not match the manifest's {sha256[:12]}…"
        )
    return path


def checked_bytes(bundle_dir: Path, relative: str, sha256: str, limit: int, setting: str) -> bytes:
    """The file's bytes once its size is within ``limit`` (checked before reading) and its sha256, hashed
    chunk by chunk as it is read, matches the manifest's."""
    path = _inside(bundle_dir, relative)
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
        gallery = open_gallery(spec, bundle_dir, manifest)
        if gallery.size:
            gallery.search(gallery.vector(0), 1)  # warm-up: touch the index once
        galleries[spec.modality] = gallery
    return galleries


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
    galleries = _open_galleries(bundle_dir, manifest, limits.milvus)
    graph = ModalityGraph(manifest, criterion)
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
    return Bundle(bundle_dir, manifest, translators, galleries, graph, seconds, encoders, media)
