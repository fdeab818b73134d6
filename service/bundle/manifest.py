"""The bundle manifest: the contract between training (which writes it) and the service (which reads it).

A bundle is a folder ``models/<name>/`` holding ``manifest.json``, ``translators/<src>__<dst>.onnx`` and
``index/<modality>.faiss`` + ``index/<modality>.parquet``. Every translator maps a *raw* embedding of its
source modality to a *raw* embedding of its target modality (any centring or scaling is baked into the
ONNX graph), so translators chain along a route without glue. Galleries search by cosine after the
gallery's own centring, which is stored inside the FAISS index as a pre-transform.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
MAX_MANIFEST_BYTES = 4 << 20
# The bundle layout and the translators' ONNX signature: training writes these, the service checks them.
TRANSLATORS_DIR = "translators"
INDEX_DIR = "index"
ONNX_INPUT = "input"
ONNX_OUTPUT = "output"

# Simplest first: selection breaks ties by this order. New kinds only add values, so old bundles still read.
EdgeKind = Literal["identity", "centroid", "standardise", "procrustes", "ridge", "cca", "svcca", "mlp", "dmvae",
                   "unpaired"]
EDGE_KINDS: tuple[EdgeKind, ...] = ("identity", "centroid", "standardise", "procrustes", "ridge", "cca", "svcca", "mlp",
                                    "dmvae", "unpaired")
IndexType = Literal["flat", "ivf", "hnsw", "ivf-pq"]
INDEX_TYPES: tuple[IndexType, ...] = ("flat", "ivf", "hnsw", "ivf-pq")


def edge_key(source: str, target: str) -> str:
    return f"{source}__{target}"


def translator_file(source: str, target: str) -> str:
    """Where the ONNX translator of edge ``source``→``target`` lives, relative to the bundle."""
    return f"{TRANSLATORS_DIR}/{edge_key(source, target)}.onnx"


def gallery_files(modality: str) -> dict[str, str]:
    """The files of ``modality``'s gallery, relative to the bundle: the FAISS index, the id/payload table
    (Arrow IPC), the raw vectors and the id lookup (.npy). Bundles written before these last three may
    hold a Parquet id table instead; the service reads both."""
    return {
        "index": f"{INDEX_DIR}/{modality}.faiss",
        "ids": f"{INDEX_DIR}/{modality}.arrow",
        "vectors": f"{INDEX_DIR}/{modality}.vectors.npy",
        "lookup": f"{INDEX_DIR}/{modality}.lookup.npy",
    }


class BundleError(Exception):
    """A bundle that does not check out; the message names the file and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModalitySpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["audio"])
    dim: int = Field(gt=0, examples=[384])
    normalization: Literal["none", "l2"] = Field(
        default="none", description="What the translators expect of an input vector; 'none' means raw."
    )
    description: str = ""


MetricSource = Literal["test", "cross_validation"]


class EdgeMetrics(_Strict):
    """Held-out quality of one directed edge, on samples the scored translator never saw.

    ``source`` says which: ``test`` (a hold-out kept from every fit) or ``cross_validation`` (the mean
    over folds of translators fitted without the fold; the shipped one then refit on every pair).
    """

    cosine: float = Field(description="Mean cosine between the translated vector and its true partner.")
    cycle_cosine: float = Field(
        description="Mean cosine between x and f_BA(f_AB(x)), the seeds' reconstruction fidelity."
    )
    r1: float
    r5: float
    r10: float
    mrr: float
    median_rank: float
    n_train: int = Field(ge=0, description="Samples (pairing keys) the scored translator was fitted on.")
    n_test: int = Field(ge=0, description="Held-out samples (pairing keys) it was scored on.")
    source: MetricSource = Field(default="test", description="Where the metrics come from: test or cross_validation.")


class FinalFit(_Strict):
    """How the shipped translator was fitted, after selection: on every usable pair."""

    n_pairs: int = Field(ge=0, description="Row pairs the final fit used.")
    n_samples: int = Field(ge=0, description="Samples (pairing keys) behind those pairs.")
    hyperparameters: dict[str, float | int | str] = Field(
        default_factory=dict, description="What cross-validation chose (e.g. ridge alpha, MLP epochs)."
    )


class EdgeSpec(_Strict):
    source: str
    target: str
    kind: EdgeKind
    file: str = Field(description="ONNX file, relative to the bundle.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    metrics: EdgeMetrics
    candidates: dict[str, EdgeMetrics] = Field(
        default_factory=dict, description="Held-out metrics of every kind tried for this edge (the runner-ups)."
    )
    fit: FinalFit | None = Field(default=None, description="The final fit; absent in bundles made before it.")

    @property
    def key(self) -> str:
        return edge_key(self.source, self.target)


class GallerySearch(_Strict):
    """How an approximate gallery is searched, and what that was measured to give (exact: no parameter)."""

    parameter: Literal["efSearch", "nprobe"] | None = Field(
        default=None, description="The search-effort knob of the index type; none for exact search."
    )
    value: int | None = Field(default=None, ge=1, description="Its tuned value, used by default.")
    limit: int | None = Field(default=None, ge=1, description="The most a request may raise it to.")
    rerank: int = Field(
        default=1, ge=1, description="Candidates per wanted result that are re-scored exactly (IVF-PQ)."
    )
    target_recall: float | None = Field(default=None, description="Recall@10 against exact search aimed for.")
    recall_at_10: float | None = Field(default=None, description="Measured recall@10 at `value`.")
    p50_ms: float | None = Field(default=None, description="Measured single-query latency at `value`.")
    p99_ms: float | None = None
    queries: int = Field(default=0, ge=0, description="Held-out queries the measurement used.")
    query_source: str = Field(default="", description="Where those queries came from.")


MilvusIndexType = Literal["FLAT", "IVF_FLAT", "HNSW"]


class MilvusCollection(_Strict):
    """Where a gallery also lives in a Milvus collection (``latent-bridge index --backend milvus``): rows of
    id, centred unit vector, raw vector, sample and payload (JSON), pushed with the FAISS files' centring."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$", description="The collection's name.")
    index_type: MilvusIndexType = Field(description="Milvus index on the vector field (metric IP).")
    index_params: dict[str, int] = Field(default_factory=dict, description="Its build parameters (M, nlist, ...).")
    mean: list[float] | None = Field(
        default=None, description="The gallery's centring mean (queries are centred by it before the search)."
    )
    payload: list[str] = Field(default_factory=list, description="Payload columns (keys of the JSON field).")
    search: GallerySearch | None = Field(
        default=None,
        description="The search effort tuned against this collection itself (Milvus trains its own IVF lists, "
        "so FAISS's effort does not carry over); the gallery's own `search` when absent.",
    )


class GallerySpec(_Strict):
    modality: str
    index_file: str = Field(description="FAISS index, relative to the bundle.")
    index_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    ids_file: str = Field(
        description="`id`, optional `sample` and payload columns, row i = vector i: Arrow IPC "
        "(memory-mapped), or Parquet in older bundles."
    )
    ids_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    index_type: IndexType = "flat"
    size: int = Field(ge=0)
    vectors_file: str | None = Field(
        default=None, description="Raw float32 embeddings (.npy, memory-mapped), row i = vector i."
    )
    vectors_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    lookup_file: str | None = Field(
        default=None, description="Sorted 64-bit id hashes and their rows (.npy, shape (2, n))."
    )
    lookup_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    search: GallerySearch = Field(default_factory=GallerySearch)
    source: str | None = Field(default=None, description="The corpus file the gallery was indexed from.")
    milvus: MilvusCollection | None = Field(
        default=None, description="The Milvus collection holding this gallery too, when one was pushed."
    )

    def files(self) -> list[tuple[str, str]]:
        """Every file of the gallery with its sha256."""
        pairs = [(self.index_file, self.index_sha256), (self.ids_file, self.ids_sha256)]
        for file, digest in ((self.vectors_file, self.vectors_sha256), (self.lookup_file, self.lookup_sha256)):
            if file is not None and digest is not None:
                pairs.append((file, digest))
        return pairs

    @model_validator(mode="after")
    def _paired(self) -> GallerySpec:
        for name in ("vectors", "lookup"):
            if (getattr(self, f"{name}_file") is None) != (getattr(self, f"{name}_sha256") is None):
                raise ValueError(f"gallery {self.modality!r}: {name}_file and {name}_sha256 go together")
        return self


RetrievalStrategy = Literal["chain", "pivot", "fused"]
STRATEGIES: tuple[RetrievalStrategy, ...] = ("chain", "pivot", "fused")


def pivot_files(modality: str, pivot: str) -> dict[str, str]:
    """Where ``modality``'s items translated into ``pivot``'s space live, relative to the bundle."""
    return {
        "index": f"{INDEX_DIR}/{modality}.in-{pivot}.faiss",
        "vectors": f"{INDEX_DIR}/{modality}.in-{pivot}.vectors.npy",
    }


def hubness_file(source: str, modality: str, pivot: str) -> str:
    """Per-item neighbourhood means of ``modality``'s items in ``pivot`` space, against ``source`` queries."""
    return f"{INDEX_DIR}/{modality}.in-{pivot}.csls-{source}.npy"


def bank_file(source: str, modality: str, pivot: str) -> str:
    """The ``source`` training queries in ``pivot`` space that ``hubness_file`` is computed from."""
    return f"{INDEX_DIR}/{modality}.in-{pivot}.csls-{source}.bank.npy"


class PivotGallerySpec(_Strict):
    """A gallery's items translated once, at bundle time, into a pivot modality's space (row i = item i of
    the gallery it mirrors), so a routed query can be searched there instead of chained to the end."""

    modality: str = Field(description="Modality of the items (the gallery this one mirrors).")
    pivot: str = Field(description="Modality whose space the items were translated into.")
    path: list[str] = Field(description="Translators the items went through: modality → … → pivot.")
    index_file: str
    index_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    vectors_file: str
    vectors_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    items_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 of the mirrored gallery's id table it was built from."
    )
    index_type: IndexType = Field(default="flat", description="The mirrored gallery's index type.")
    search: GallerySearch = Field(
        default_factory=GallerySearch,
        description="Its search effort: the mirrored gallery's at training, tuned on its own by `index`.",
    )

    def files(self) -> list[tuple[str, str]]:
        return [(self.index_file, self.index_sha256), (self.vectors_file, self.vectors_sha256)]

    @model_serializer(mode="wrap")
    def _as_written_before(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave ``index_type`` and ``search`` out while they are the defaults: a bundle written before they
        existed then serialises, and so fingerprints, as it did (its run-time write log names that)."""
        data: dict[str, Any] = handler(self)
        if self.index_type == "flat":
            data.pop("index_type", None)
        if self.search == GallerySearch():
            data.pop("search", None)
        return data


class StrategyScore(_Strict):
    r1: float
    r10: float
    mrr: float


class RouteStrategySpec(_Strict):
    """How a retrieval ``source`` → … → ``target`` (an edge or a route) searches: chained into the target
    space, in the pivot's space (the query to the pivot, the items translated there at bundle time) or both
    fused; chosen by cross-validated R@1 on the selection folds, never on a test split."""

    source: str
    target: str
    path: list[str] = Field(description="The route the choice was made for; another path is chained.")
    pivot: str = Field(
        description="The modality before the target on the path, where `pivot` searches (for a direct edge, the "
        "source: the target's items are searched in the query's own space)."
    )
    strategy: RetrievalStrategy
    scores: dict[str, StrategyScore] = Field(
        default_factory=dict, description="Cross-validated retrieval of every strategy tried."
    )
    n_queries: int = Field(default=0, ge=0, description="Validation queries behind the scores, over all folds.")
    source_of_scores: MetricSource = "cross_validation"
    hubness: Literal["none", "csls"] = Field(
        default="none",
        description="Hubness reduction of the pivot-space scores (pivot and fused): `csls` lowers each item by "
        "half its mean cosine to its nearest translated training queries; on only where cross-validation "
        "said it helps.",
    )
    hubness_file: str | None = Field(
        default=None, description="Per-item neighbourhood means (.npy, float32, row i = pivot gallery row i)."
    )
    hubness_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    bank_file: str | None = Field(
        default=None, description="CSLS's query bank: the training queries translated into the pivot's space (.npy, "
        "float32), from which the hubness file is computed again whenever the gallery is rebuilt (index, compact)."
    )
    bank_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _hubness_file(self) -> RouteStrategySpec:
        if (self.hubness == "csls") != (self.hubness_file is not None) or (
            (self.hubness_file is None) != (self.hubness_sha256 is None)
        ):
            raise ValueError(f"route {self.source}→{self.target}: hubness 'csls' needs hubness_file and its sha256")
        if (self.bank_file is None) != (self.bank_sha256 is None) or (self.bank_file and self.hubness != "csls"):
            raise ValueError(f"route {self.source}→{self.target}: a CSLS bank needs its sha256 and hubness 'csls'")
        return self

    def files(self) -> list[tuple[str, str]]:
        """The route's own files (CSLS means and bank) with their sha256."""
        pairs = [(self.hubness_file, self.hubness_sha256), (self.bank_file, self.bank_sha256)]
        return [(f, h) for f, h in pairs if f is not None and h is not None]

    @model_serializer(mode="wrap")
    def _as_written_before(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave the bank out while there is none: a bundle written before it existed then serialises, and
        so fingerprints, as it did (its run-time write log names that)."""
        data: dict[str, Any] = handler(self)
        if self.bank_file is None:
            data.pop("bank_file", None)
            data.pop("bank_sha256", None)
        return data


class Lineage(_Strict):
    parent: str | None = Field(default=None, description="Name of the bundle this one grew from.")
    parent_fingerprint: str | None = None
    new_edges: list[str] = Field(default_factory=list, description="Edges `src__dst` trained for this bundle.")
    new_galleries: list[str] = Field(
        default_factory=list, description="Modalities whose gallery was (re)built for this bundle."
    )
    folded_writes: dict[str, int] = Field(
        default_factory=dict, description="Per modality, run-time writes of the parent folded in by `compact`."
    )


EncoderKind = Literal["onnx-text", "onnx-image", "ctranslate2-whisper"]
InputKind = Literal["text", "image", "audio"]
ENCODER_INPUT: dict[str, InputKind] = {"onnx-text": "text", "onnx-image": "image", "ctranslate2-whisper": "audio"}


class EncoderFile(_Strict):
    role: str = Field(description="What the file is to the encoder: model, tokenizer, config, mel_filters, ...")
    file: str = Field(description="Relative to the bundle.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TextPreprocessing(_Strict):
    max_tokens: int = Field(gt=0, description="Longer inputs are truncated, as the encoder did for the dataset.")


class ImagePreprocessing(_Strict):
    size: int = Field(gt=0, description="Square side the image is resized to, after padding it to a square.")
    background: tuple[int, int, int] = Field(description="RGB of the canvas transparency and padding go on.")
    resample: Literal["bicubic", "bilinear"] = "bicubic"
    offset: float = Field(description="pixel' = (pixel - offset) / scale, per channel, on 0..255 values.")
    scale: float = Field(gt=0)


class AudioPreprocessing(_Strict):
    sample_rate: int = Field(gt=0, description="Input is resampled to this rate, mono.")
    window_seconds: float = Field(gt=0, description="Only this much of the start is encoded.")
    n_fft: int = Field(gt=0)
    hop_length: int = Field(gt=0)
    n_mels: int = Field(gt=0)
    encoder_stride: int = Field(gt=0, description="Mel frames per encoder frame.")
    compute_type: str = Field(description="CTranslate2 compute type the dataset was encoded with.")


class EncoderSpec(_Strict):
    """How the server embeds raw input of one modality exactly as the dataset was embedded."""

    modality: str
    kind: EncoderKind
    model: str = Field(description="The encoder, in words.")
    dim: int = Field(gt=0)
    files: list[EncoderFile]
    text: TextPreprocessing | None = None
    image: ImagePreprocessing | None = None
    audio: AudioPreprocessing | None = None

    @property
    def input(self) -> InputKind:
        return ENCODER_INPUT[self.kind]

    def file(self, role: str) -> EncoderFile:
        return next(f for f in self.files if f.role == role)

    @model_validator(mode="after")
    def _preprocessing_fits(self) -> EncoderSpec:
        given = {k for k in ("text", "image", "audio") if getattr(self, k) is not None}
        if given != {self.input}:
            raise ValueError(f"encoder kind {self.kind!r} needs exactly the {self.input!r} preprocessing")
        return self


class MediaSpec(_Strict):
    """Where the page finds a gallery item's media: thumbnails inside the bundle, or an installed folder."""

    modality: str
    file: str | None = Field(default=None, description="Parquet (id, content_type, data) inside the bundle.")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    root: str | None = Field(
        default=None, description="Absolute folder outside the bundle holding the gallery's `uri` files, if present."
    )
    column: str = Field(default="uri", description="Gallery payload column naming the file under `root`.")
    license: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> MediaSpec:
        if (self.file is None) == (self.root is None) or (self.file is None) != (self.sha256 is None):
            raise ValueError("media needs either `file` with its `sha256`, or `root`")
        return self


class Manifest(_Strict):
    schema_version: int
    name: str
    created_at: datetime
    modalities: list[ModalitySpec]
    edges: list[EdgeSpec]
    galleries: list[GallerySpec] = Field(default_factory=list)
    dataset_fingerprint: str = Field(description="sha256 over the dataset files the bundle was trained on.")
    versions: dict[str, str] = Field(default_factory=dict, description="Package versions that made it.")
    training: dict[str, object] = Field(default_factory=dict, description="Training configuration used.")
    lineage: Lineage = Field(default_factory=Lineage)
    encoders: list[EncoderSpec] = Field(
        default_factory=list, description="Per modality, the encoder that embeds raw text, images or sound."
    )
    media: list[MediaSpec] = Field(default_factory=list, description="Thumbnails and sounds the page shows.")
    pivot_galleries: list[PivotGallerySpec] = Field(
        default_factory=list, description="Galleries translated into a pivot's space, for pivot retrieval."
    )
    routes: list[RouteStrategySpec] = Field(
        default_factory=list,
        description="Per pair of modalities (an edge or a route), the retrieval strategy chosen.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"unknown schema_version {self.schema_version}; this build reads {SCHEMA_VERSION}")
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate modality names in {names}")
        keys = [e.key for e in self.edges]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate edges")
        for e in self.edges:
            for end in (e.source, e.target):
                if end not in names:
                    raise ValueError(f"edge {e.key} names unknown modality {end!r}")
            if e.source == e.target:
                raise ValueError(f"edge {e.key} is a loop")
        for g in self.galleries:
            if g.modality not in names:
                raise ValueError(f"gallery names unknown modality {g.modality!r}")
        self._check_encoders(names)
        self._check_pivots(names)
        return self

    def _check_pivots(self, names: list[str]) -> None:
        with_gallery = {g.modality for g in self.galleries}
        for p in self.pivot_galleries:
            if p.modality not in with_gallery or p.pivot not in names:
                raise ValueError(f"pivot gallery {p.modality}→{p.pivot} names a modality without a gallery")
            if len(p.path) < 2 or p.path[0] != p.modality or p.path[-1] != p.pivot:
                raise ValueError(f"pivot gallery {p.modality}→{p.pivot}: path {p.path} must run from one to the other")
        for r in self.routes:
            if len(r.path) < 2 or r.path[0] != r.source or r.path[-1] != r.target or r.path[-2] != r.pivot:
                raise ValueError(f"route {r.source}→{r.target}: path {r.path} must run from source through pivot "
                                 "to target")

    def _check_encoders(self, names: list[str]) -> None:
        parts = (("encoder", [e.modality for e in self.encoders]), ("media", [m.modality for m in self.media]))
        for part, modalities in parts:
            for name in modalities:
                if name not in names:
                    raise ValueError(f"{part} names unknown modality {name!r}")
            if len(set(modalities)) != len(modalities):
                raise ValueError(f"two {part} entries for one modality in {modalities}")
        for e in self.encoders:
            if e.dim != self.modality(e.modality).dim:
                raise ValueError(f"encoder of {e.modality!r} gives {e.dim} dimensions, the modality has "
                                 f"{self.modality(e.modality).dim}")

    def modality(self, name: str) -> ModalitySpec:
        return next(m for m in self.modalities if m.name == name)

    def fixed_files(self) -> list[str]:
        """The files that do not depend on the galleries: translators, encoders, media thumbnails. A bundle
        rebuilt from this one with new galleries (``index``, ``compact``) carries them byte for byte."""
        return ([e.file for e in self.edges] + [f.file for enc in self.encoders for f in enc.files]
                + [m.file for m in self.media if m.file is not None])

    @cached_property
    def fingerprint(self) -> str:
        """Short identity of this bundle's content: a hash over its files' hashes and the manifest itself
        (which holds the metrics routing reads: a metrics-only change is another bundle)."""
        parts = sorted(
            [e.sha256 for e in self.edges]
            + [g.index_sha256 for g in self.galleries]
            + [f.sha256 for enc in self.encoders for f in enc.files]
            + [p.index_sha256 for p in self.pivot_galleries]
        )
        manifest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()
        return hashlib.sha256(("".join(parts) + manifest).encode()).hexdigest()[:16]


def read_manifest(bundle_dir: Path, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest:
    """Parse and validate ``manifest.json``; raise ``BundleError`` naming the file on any problem.

    The size is checked before a byte is read; JSON nested deeper than pydantic-core's limit (200) is
    refused, not recursed into."""
    path = Path(bundle_dir) / MANIFEST_FILE
    try:
        if not path.is_file():
            raise BundleError(f"{path}: missing manifest")
        size = path.stat().st_size
        if size > max_bytes:
            raise BundleError(f"{path}: {size} bytes, over the limit of {max_bytes} (max_manifest_bytes)")
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise BundleError(f"{path}: over the limit of {max_bytes} bytes (max_manifest_bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = pydantic_core.from_json(text)
    except ValueError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise BundleError(f"{path}: {where}: {first['msg']}") from None


def write_manifest(manifest: Manifest, bundle_dir: Path) -> Path:
    path = Path(bundle_dir) / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path
