"""Request and response models of the HTTP API (one pair per endpoint), apart from the logic.

``from`` is a Python keyword, so fields holding it are named ``source`` with the alias ``from``.
"""

from __future__ import annotations

from typing import Any, Literal

from latent_bridge.service.api import examples
from latent_bridge.service.bundle.manifest import EdgeKind, EdgeMetrics, IndexType, RetrievalStrategy, StrategyScore
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

Encoding = Literal["float", "base64"]
MAX_PATH = 64  # entries of a pinned path; the bundle's own bound (one per modality) is checked by the graph
VECTORS_DOC = (
    "Input vectors: a list of rows (encoding 'float'), or with encoding 'base64' one base64 string of the "
    "little-endian float32 values of all rows, row after row (n × dim values)."
)
VECTOR_DOC = (
    "One input vector, instead of `vectors`: a list of floats, or one base64 string with encoding 'base64'."
)


K_CEILING = 10_000  # the largest max_k a server may be configured with; the served schema states its own
K_DOC = "Results per query, at most the server's max_k (the `maximum` here)."
EFFORT_CEILING = 4096
EFFORT_DOC = (
    "Search effort for an approximate gallery (HNSW efSearch, IVF nprobe): at least the value tuned at "
    "indexing time (the default) and at most the gallery's limit; ignored by exact galleries."
)
WHERE_DOC = (
    "Keep only items whose payload matches every condition: `column: value` (equality) or "
    "`column: [v1, v2]` (in the list)."
)
EXCLUDE_SELF_DOC = "Leave each query item itself out of its results (queries by id)."
WhereValue = str | int | float | bool | None


class _Request(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


RawItems = str | list[str] | None
TEXT_DOC = "Raw text to embed with the modality's encoder (one string or a list), instead of vectors."
IMAGE_DOC = "Image file(s), base64 (PNG, JPEG, WebP, GIF...), for a modality with an image encoder."
AUDIO_DOC = "Sound file(s), base64 (WAV, FLAC, Ogg, MP3), for a modality with an audio encoder."


class RawInput(BaseModel):
    """Raw input fields, for modalities whose bundle names an encoder (GET /modalities says which)."""

    text: RawItems = Field(default=None, description=TEXT_DOC)
    image: RawItems = Field(default=None, description=IMAGE_DOC)
    audio: RawItems = Field(default=None, description=AUDIO_DOC)


class Problem(BaseModel):
    """An RFC 9457 problem: every error body of this API has this shape (and may add members)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:latent-bridge:problem:dimension-mismatch",
                    "title": "Wrong vector dimension",
                    "status": 422,
                    "detail": "vectors of modality 'audio' have 384 dimensions, got 512",
                    "instance": "/translate",
                    "request_id": "6f1c2b0e9a7d4e1f",
                    "expected": 384,
                    "got": 512,
                }
            ]
        },
    )

    type: str = Field(description="URN naming the kind of problem, e.g. urn:latent-bridge:problem:no-route.")
    title: str
    status: int
    detail: str = Field(description="What was wrong with this request, in words.")
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = Field(default=None, description="Also in the X-Request-ID response header.")


class GallerySearchInfo(BaseModel):
    parameter: str | None = Field(description="efSearch (HNSW), nprobe (IVF) or none (exact).")
    value: int | None = Field(description="The tuned value, used unless a request asks for more effort.")
    limit: int | None = Field(description="The most effort a request may ask for.")
    recall_at_10: float | None = Field(description="Measured recall@10 against exact search at `value`.")
    p50_ms: float | None = Field(description="Measured single-query latency at `value` (in-process).")


class GalleryInfo(BaseModel):
    size: int = Field(description="Items in the bundle's gallery.")
    count: int = Field(description="Items served now: the bundle's, less deletions, plus run-time writes.")
    index_type: IndexType
    payload: list[str] = Field(description="Payload columns returned with each hit.")
    search: GallerySearchInfo


class ModalityInfo(BaseModel):
    name: str = Field(examples=["audio"])
    dim: int = Field(examples=[384])
    normalization: Literal["none", "l2"]
    description: str
    gallery: GalleryInfo | None = Field(
        description="The modality's retrieval gallery, if the bundle has one."
    )
    encoder: str | None = Field(
        default=None, description="Raw input the modality's encoder takes (text, image or audio), if any."
    )


class ModalitiesResponse(BaseModel):
    bundle: str
    modalities: list[ModalityInfo]


class GraphEdge(BaseModel):
    source: str
    target: str
    kind: EdgeKind
    fidelity: float = Field(description="The edge's metric under the routing criterion.")
    cost: float = Field(description="-log(fidelity), what routing minimises.")
    metrics: EdgeMetrics


class GraphResponse(BaseModel):
    bundle: str
    criterion: str = Field(description="The edge metric used as fidelity: mrr (default), r1, cycle_cosine or cosine.")
    nodes: list[ModalityInfo]
    edges: list[GraphEdge]
    components: list[list[str]] = Field(description="Groups of modalities connected by edges.")


class HopInfo(BaseModel):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    kind: EdgeKind
    fidelity: float


class RouteInfo(BaseModel):
    path: list[str] = Field(examples=[["audio", "image", "text"]])
    hops: list[HopInfo]
    fidelity: float = Field(description="Estimated fidelity of the whole path: the product of the hops'.")
    cost: float = Field(description="Sum of the hops' -log(fidelity).")


STRATEGY_DOC = (
    "How a retrieval searches: `chain` (the query translated into the target space), `pivot` (the query "
    "translated to the modality before the target, or left in its own space on a direct edge, and searched "
    "among the target items translated there at bundle time) or `fused` (both, ranked by the mean score). "
    "Default: the route's cross-validated choice."
)


class StrategyInfo(BaseModel):
    strategy: RetrievalStrategy = Field(description="What a retrieval along this route uses now, unpinned.")
    chosen: RetrievalStrategy | None = Field(
        description="The bundle's cross-validated choice for this route (none: no choice recorded, chained)."
    )
    pivot: str | None = Field(description="The pivot modality of `pivot` and `fused`.")
    available: list[RetrievalStrategy] = Field(description="Strategies a request may pin on this route now.")
    note: str | None = Field(default=None, description="Why a pivot strategy is unavailable, if it is.")
    hubness: Literal["none", "csls"] = Field(
        default="none", description="The route's hubness reduction of pivot-space scores (pivot and fused)."
    )
    scores: dict[str, StrategyScore] = Field(
        default_factory=dict, description="Cross-validated R@1, R@10 and MRR of each strategy tried."
    )


class RouteResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "audio",
                    "to": "image",
                    "criterion": "mrr",
                    "best": {
                        "path": ["audio", "text", "image"],
                        "fidelity": 0.86,
                        "cost": 0.151,
                        "hops": [
                            {"from": "audio", "to": "text", "kind": "mlp", "fidelity": 0.92},
                            {"from": "text", "to": "image", "kind": "ridge", "fidelity": 0.935},
                        ],
                    },
                    "alternatives": [
                        {
                            "path": ["audio", "image"],
                            "fidelity": 0.7,
                            "cost": 0.357,
                            "hops": [{"from": "audio", "to": "image", "kind": "ridge", "fidelity": 0.7}],
                        }
                    ],
                    "strategy": {
                        "strategy": "fused",
                        "chosen": "fused",
                        "pivot": "text",
                        "available": ["chain", "pivot", "fused"],
                        "note": None,
                        "hubness": "none",
                        "scores": {
                            "chain": {"r1": 0.114, "r10": 0.43, "mrr": 0.2},
                            "pivot": {"r1": 0.134, "r10": 0.45, "mrr": 0.22},
                            "fused": {"r1": 0.138, "r10": 0.46, "mrr": 0.23},
                        },
                    },
                }
            ]
        }
    )

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    criterion: str
    best: RouteInfo
    alternatives: list[RouteInfo] = Field(description="The next cheapest simple paths, best first.")
    strategy: StrategyInfo = Field(description="How a retrieval along the best route searches.")


class TranslateRequest(RawInput, _Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [example["value"] for example in examples.TRANSLATE.values()]
        },
    )

    source: str = Field(alias="from", description="Modality of the input vectors.")
    target: str = Field(alias="to", description="Modality to translate into.")
    vectors: list[list[StrictFloat]] | str | None = Field(default=None, description=VECTORS_DOC)
    vector: list[StrictFloat] | str | None = Field(default=None, description=VECTOR_DOC)
    encoding: Encoding = Field(default="float", description="How vectors are sent and returned.")
    path: list[str] | None = Field(
        default=None,
        max_length=MAX_PATH,
        description="Pin the route: a simple path of modalities (each at most once) from `from` to `to`; "
        "default the best route.",
    )
    normalize: bool = Field(default=True, description="L2-normalise the returned vectors.")
    confidence: bool = Field(
        default=False,
        description="Also return, per input, the cosine between it and its round trip back to the "
        "source space.",
    )


class TranslateResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "audio",
                    "to": "text",
                    "path": ["audio", "image", "text"],
                    "hops": [
                        {"from": "audio", "to": "image", "kind": "mlp", "fidelity": 0.91},
                        {"from": "image", "to": "text", "kind": "ridge", "fidelity": 0.95},
                    ],
                    "fidelity": 0.8645,
                    "count": 1,
                    "dim": 3,
                    "encoding": "float",
                    "vectors": [[0.31, -0.12, 0.94]],
                    "confidence": [0.88],
                }
            ]
        }
    )

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    path: list[str]
    hops: list[HopInfo]
    fidelity: float = Field(
        description="Estimated fidelity of the path (product of held-out edge fidelities)."
    )
    count: int
    dim: int
    encoding: Encoding
    vectors: list[list[float]] | str = Field(description="Translated vectors, in the request's encoding.")
    confidence: list[float] | None = Field(
        default=None, description="Per-input round-trip cosine, when asked for."
    )


class RetrieveRequest(RawInput, _Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [example["value"] for example in examples.RETRIEVE.values()]
        },
    )

    source: str = Field(alias="from", description="Modality of the query vectors.")
    target: str = Field(alias="to", description="Modality whose gallery is searched.")
    vectors: list[list[StrictFloat]] | str | None = Field(default=None, description=VECTORS_DOC)
    vector: list[StrictFloat] | str | None = Field(default=None, description=VECTOR_DOC)
    ids: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Ids of stored items of the `from` gallery as the queries, instead of vectors.",
        examples=[["audio-7", "audio-9"]],
    )
    encoding: Encoding = "float"
    k: int = Field(default=10, ge=1, le=K_CEILING, description=K_DOC)
    path: list[str] | None = Field(
        default=None, max_length=MAX_PATH, description="Pin the translation route: a simple path, as in /translate."
    )
    where: dict[str, WhereValue | list[WhereValue]] | None = Field(
        default=None,
        description=WHERE_DOC,
        examples=[{"label": "dog", "colour": ["red", "blue"]}],
    )
    exclude_self: bool = Field(default=False, description=EXCLUDE_SELF_DOC)
    effort: int | None = Field(default=None, ge=1, le=EFFORT_CEILING, description=EFFORT_DOC)
    strategy: RetrievalStrategy | None = Field(default=None, description=STRATEGY_DOC)


class Hit(BaseModel):
    id: str = Field(examples=["text-42"])
    score: float = Field(description="Cosine after the gallery's centring.")
    sample: str = Field(description="The item's pairing key.")
    payload: dict[str, Any] = Field(examples=[{"caption": "A frog."}])


class QueryHits(BaseModel):
    query: int | str = Field(description="Index of the query vector, or the id of the stored query item.")
    hits: list[Hit]


class RetrieveResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "audio",
                    "to": "text",
                    "path": ["audio", "text"],
                    "fidelity": 0.93,
                    "k": 1,
                    "strategy": "chain",
                    "pivot": None,
                    "strategy_note": None,
                    "hubness": "none",
                    "results": [
                        {
                            "query": "audio-7",
                            "hits": [
                                {
                                    "id": "text-7",
                                    "score": 0.81,
                                    "sample": "dog",
                                    "payload": {"caption": "A dog barks."},
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    path: list[str]
    fidelity: float
    k: int
    strategy: RetrievalStrategy = Field(default="chain", description="How the gallery was searched.")
    pivot: str | None = Field(default=None, description="The pivot modality searched in, for `pivot` and `fused`.")
    strategy_note: str | None = Field(default=None, description="Why the route's chosen strategy fell back to chain.")
    hubness: Literal["none", "csls"] = Field(
        default="none", description="Hubness reduction of the pivot-space scores (`csls`: scores are CSLS-adjusted)."
    )
    results: list[QueryHits]


class ItemsUpsert(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"ids": ["img-1001"], "vectors": [[0.12, -0.3, 0.05]], "payload": [{"caption": "A red kite."}]},
                {"ids": ["img-1002", "img-1003"], "vectors": "zczMPZqZmb4AAAA/zczMPZqZmb4AAAA/", "encoding": "base64"},
            ]
        }
    )

    ids: list[str] = Field(min_length=1, description="Ids of the items; an existing id is replaced.")
    vectors: list[list[float]] | str = Field(
        description="Raw embeddings of the gallery's modality, one per id (the gallery centres them itself). "
        + VECTORS_DOC
    )
    encoding: Encoding = "float"
    payload: list[dict[str, Any]] | None = Field(
        default=None, description="One object per id, with the gallery's payload columns (others are refused)."
    )


class ItemsDelete(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ids": ["img-1001"]}]})

    ids: list[str] = Field(min_length=1, description="Ids to remove; ids not in the gallery are listed back.")


class WriteResponse(BaseModel):
    modality: str
    written: int = Field(description="Items inserted, replaced or deleted; durable before this answer.")
    missing: list[str] = Field(default_factory=list, description="Ids of a delete that were not there.")
    count: int = Field(description="Items the gallery serves now.")


class Item(BaseModel):
    id: str
    sample: str
    payload: dict[str, Any]
    vector: list[float] = Field(description="The stored raw embedding.")


class EmbedRequest(RawInput, _Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"modality": "text", "text": "a dog"},
                {"modality": "text", "text": ["a dog", "a fire truck"], "encoding": "base64"},
                {"modality": "image", "image": "iVBORw0KGgoAAAANSUhEUgAA..."},
            ]
        }
    )

    modality: str = Field(description="Modality whose encoder embeds the input.", examples=["text"])
    encoding: Encoding = Field(default="float", description="How the vectors are returned.")


class EmbedResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"modality": "text", "count": 1, "dim": 3, "encoding": "float", "vectors": [[0.1, -0.2, 0.97]]}
            ]
        }
    )

    modality: str
    count: int
    dim: int
    encoding: Encoding
    vectors: list[list[float]] | str = Field(description="The raw embeddings, as the dataset holds them.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """With ``LATENT_BRIDGE_READYZ_DETAILS=false`` only ``status``: the probe is open without a key."""

    status: Literal["ready"] = "ready"
    bundle: str | None = None
    fingerprint: str | None = None
    modalities: int | None = None
    edges: int | None = None
    galleries: int | None = None
    load_seconds: float | None = None


class ReloadRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"bundle": "demo-v2"}]})

    bundle: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Bundle folder to load, relative to the models folder (LATENT_BRIDGE_MODELS_DIR; an "
        "absolute path must lie inside it); default the configured one (LATENT_BRIDGE_BUNDLE).",
    )


class BundleRef(BaseModel):
    bundle: str
    fingerprint: str


class ReloadResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "reloaded",
                    "bundle": "demo",
                    "fingerprint": "3f2a9c0d1b7e",
                    "path": "models/demo",
                    "load_seconds": 0.41,
                    "previous": {"bundle": "demo", "fingerprint": "9e81aa03c4d2"},
                }
            ]
        }
    )

    status: Literal["reloaded"] = "reloaded"
    bundle: str
    fingerprint: str
    path: str = Field(description="The folder the bundle was loaded from.")
    load_seconds: float = Field(description="Time to validate, load and warm it up.")
    previous: BundleRef | None = Field(description="The bundle it replaced.")
