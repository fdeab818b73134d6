"""The bundle manifest: the contract between training (which writes it) and the service (which reads it).

A bundle is a folder ``models/<name>/`` holding ``manifest.json``, ``translators/<src>__<dst>.onnx`` and
``index/<modality>.faiss`` + ``index/<modality>.parquet``. Every translator maps a *raw* embedding of its
source modality to a *raw* embedding of its target modality (any centring or scaling is baked into the
ONNX graph), so translators chain along a route without glue. Galleries search by cosine after the
gallery's own centring, which is stored inside the FAISS index as a pre-transform.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"

EdgeKind = Literal["identity", "centroid", "procrustes", "ridge", "cca", "mlp"]
EDGE_KINDS: tuple[EdgeKind, ...] = ("identity", "centroid", "procrustes", "ridge", "cca", "mlp")
IndexType = Literal["flat", "ivf", "hnsw"]


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
        return f"{self.source}__{self.target}"


class GallerySpec(_Strict):
    modality: str
    index_file: str = Field(description="FAISS index, relative to the bundle.")
    index_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    ids_file: str = Field(description="Parquet with `id` and payload columns, row i = vector i.")
    ids_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    index_type: IndexType = "flat"
    size: int = Field(ge=0)


class Lineage(_Strict):
    parent: str | None = Field(default=None, description="Name of the bundle this one grew from.")
    parent_fingerprint: str | None = None
    new_edges: list[str] = Field(default_factory=list, description="Edges `src__dst` trained for this bundle.")


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
        return self

    def modality(self, name: str) -> ModalitySpec:
        return next(m for m in self.modalities if m.name == name)

    @property
    def fingerprint(self) -> str:
        """Short identity of this bundle's content: a hash over its files' hashes."""
        parts = sorted([e.sha256 for e in self.edges] + [g.index_sha256 for g in self.galleries])
        return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]


def read_manifest(bundle_dir: Path) -> Manifest:
    """Parse and validate ``manifest.json``; raise ``BundleError`` naming the file on any problem."""
    path = Path(bundle_dir) / MANIFEST_FILE
    if not path.is_file():
        raise BundleError(f"{path}: missing manifest")
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise BundleError(f"{path}: {where}: {first['msg']}") from exc


def write_manifest(manifest: Manifest, bundle_dir: Path) -> Path:
    path = Path(bundle_dir) / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path
