"""`latent-bridge migrate`: switch to a new encoder without re-embedding the corpus, and say whether it is safe.

Input: the old corpus (ids + old-encoder embeddings, what the gallery serves) and a re-embedded sample of
it (a few percent of its ids, embedded with the new encoder). The sample's ids pair the two spaces, so
the adapter is an ordinary edge ``new ↔ old`` trained by ``train`` (selection, refit, ONNX export) with a
``--holdout`` share of the sample kept out; the old corpus becomes the ``old`` gallery through
``index_corpora``. Then the report, on held-out queries, through the bundle the server loads:

- ``adapter``: a new-encoder query → adapter → the old gallery (what the server does after the switch);
- ``corpus_side``: the old corpus translated into the new space (what ``latent-bridge translate`` writes),
  searched with the new-encoder query as it is;
- ``reembedded``: the new-encoder query against the corpus re-embedded with the new encoder;
- ``old_encoder``: the old encoder's own query against the old corpus (what users have today);
- ``recall_retained``: adapter R@10 / re-embedded R@10.

Queries with relevance (``--queries``: ``id``, ``embedding`` by the new encoder, ``relevant`` = a corpus
id, optional ``embedding_old``) are scored against the whole corpus when ``--reembedded`` gives the corpus
in the new space (a benchmark has it); otherwise every ratio is measured on the gallery of the held-out
sample's documents, the only ones known in both spaces. Without ``--queries`` the held-out sample's own
documents are the queries (a document must find itself), so ``reembedded`` is 1 by construction.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from latent_bridge.corpus import embedding_matrix
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.service.engine.translate import run_route
from latent_bridge.training.bundling.indexing import IndexOptions, index_corpora
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import write_modality
from latent_bridge.training.datasets.splits import bundle_split
from latent_bridge.training.evaluate import retrieval_summary
from latent_bridge.training.train import train
from tqdm.auto import tqdm

Translate = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Vectors:
    """Rows of a Parquet file: ids, float32 embeddings, and the other columns asked for."""

    ids: np.ndarray
    embeddings: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, rows: np.ndarray) -> Vectors:
        return Vectors(self.ids[rows], self.embeddings[rows], {k: v[rows] for k, v in self.extra.items()})


def read_vectors(path: Path, column: str = "embedding", extra: tuple[str, ...] = ()) -> Vectors:
    """``id``, an embedding column and optional columns of a Parquet file (the optional ones where present)."""
    names = pq.read_schema(path).names
    for needed in ("id", column):
        if needed not in names:
            raise ValueError(f"{path}: missing column {needed!r} (found {names})")
    table = pq.read_table(path, columns=["id", column, *[c for c in extra if c in names]])

    def matrix(name: str) -> np.ndarray:
        dim = len(table.column(name)[0].as_py()) if table.num_rows else 0
        return embedding_matrix(table.column(name), dim, path)

    found = {c: matrix(c) if "embedding" in c else table.column(c).to_numpy(zero_copy_only=False)
             for c in extra if c in names}
    ids = table.column("id").cast("string").to_numpy(zero_copy_only=False)
    return Vectors(ids, matrix(column), found)


@dataclass(frozen=True)
class MigrationConfig:
    corpus: Path  # old corpus: id, embedding (old encoder), payload
    sample: Path  # re-embedded sample: id (a corpus id), embedding (new encoder)
    out: Path  # the bundle to write
    queries: Path | None = None  # id, embedding (new encoder), relevant (corpus id), optional embedding_old
    reembedded: Path | None = None  # the whole corpus in the new encoder, for the exact denominator
    old: str = "old"
    new: str = "new"
    holdout: float = 0.2
    kind: str = "auto"
    seed: int = 0
    progress: bool = True
    index_type: str = "auto"


def sample_dataset(cfg: MigrationConfig, corpus: Vectors, sample: Vectors, folder: Path) -> Path:
    """The training dataset: the sample's rows in both spaces, paired by corpus id."""
    where = {i: n for n, i in enumerate(corpus.ids)}
    unknown = [i for i in sample.ids if i not in where]
    if unknown:
        raise ValueError(f"{cfg.sample}: {len(unknown)} ids are not in the corpus {cfg.corpus}, e.g. {unknown[:3]}")
    keys = [str(i) for i in sample.ids]
    folder.mkdir(parents=True, exist_ok=True)
    write_modality(folder, cfg.old, keys, corpus.embeddings[[where[i] for i in sample.ids]])
    write_modality(folder, cfg.new, keys, sample.embeddings)
    return folder


def build_bundle(cfg: MigrationConfig, corpus: Vectors, sample: Vectors) -> None:
    """Train the adapter edge on the sample, then index the whole old corpus as the old gallery."""
    with tempfile.TemporaryDirectory(prefix="migrate-") as tmp:
        data = sample_dataset(cfg, corpus, sample, Path(tmp) / "data")
        trained = Path(tmp) / "trained"
        train(TrainConfig(data=data, out=trained, edges=[(cfg.new, cfg.old)], holdout=cfg.holdout, kind=cfg.kind,
                          seed=cfg.seed, progress=cfg.progress))
        index_corpora(trained, {cfg.old: cfg.corpus}, cfg.out,
                      IndexOptions(index_type=cfg.index_type, progress=cfg.progress), same_run=True)


def recall(queries: np.ndarray, relevant: np.ndarray, gallery: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """R@1/5/10 and MRR of ``queries`` whose relevant item is ``relevant`` (ids of the gallery)."""
    return {k: round(v, 4) for k, v in retrieval_summary(ranks(queries, relevant, gallery, ids)).items()}


@dataclass(frozen=True)
class Scene:
    """What is scored: queries (new encoder, optionally old), their relevant ids, the gallery in both spaces
    (``new`` None where the gallery is not known in the new space)."""

    queries: np.ndarray
    queries_old: np.ndarray | None
    relevant: np.ndarray
    ids: np.ndarray
    old: np.ndarray
    new: np.ndarray | None
    finds_itself: bool = False  # queries are the gallery's own documents: re-embedding finds them at rank 1


def score_scene(scene: Scene, adapter: Translate, to_new: Translate) -> dict[str, object]:
    """Every way of searching the scene's gallery, and the recall retained."""
    found: dict[str, object] = {"queries": len(scene.queries), "gallery": len(scene.ids)}
    found["adapter"] = recall(adapter(scene.queries), scene.relevant, scene.old, scene.ids)
    found["corpus_side"] = recall(scene.queries, scene.relevant, to_new(scene.old), scene.ids)
    if scene.new is not None:
        found["reembedded"] = recall(scene.queries, scene.relevant, scene.new, scene.ids)
    if scene.queries_old is not None:
        found["old_encoder"] = recall(scene.queries_old, scene.relevant, scene.old, scene.ids)
    base = 1.0 if scene.finds_itself else found["reembedded"]["r10"] if "reembedded" in found else None  # type: ignore[index]
    if base:
        for side in ("adapter", "corpus_side"):
            found[f"recall_retained_{side}"] = round(found[side]["r10"] / base, 4)  # type: ignore[index]
    return found


@dataclass(frozen=True)
class HeldOut:
    """The held-out sample's documents, known in both spaces."""

    ids: np.ndarray
    old: np.ndarray
    new: np.ndarray


def held_out(corpus: Vectors, sample: Vectors, training: dict[str, object]) -> HeldOut:
    test = bundle_split(training, set(sample.ids.tolist())).test
    if not test:
        raise ValueError("no held-out sample to report on: use --holdout > 0")
    rows = np.flatnonzero(np.isin(sample.ids, list(test)))
    where = {i: n for n, i in enumerate(corpus.ids)}
    return HeldOut(sample.ids[rows], corpus.embeddings[[where[i] for i in sample.ids[rows]]], sample.embeddings[rows])


def document_scene(corpus: Vectors, docs: HeldOut) -> Scene:
    """Each held-out document's new embedding must find the document itself in the whole old corpus."""
    return Scene(docs.new, None, docs.ids, corpus.ids, corpus.embeddings, None, finds_itself=True)


def query_scene(cfg: MigrationConfig, corpus: Vectors, docs: HeldOut) -> Scene:
    """``--queries`` against the whole corpus (with ``--reembedded``) or the held-out documents."""
    assert cfg.queries is not None
    q = read_vectors(cfg.queries, extra=("relevant", "embedding_old"))
    if "relevant" not in q.extra:
        raise ValueError(f"{cfg.queries}: missing column 'relevant' (the corpus id each query should find)")
    relevant = q.extra["relevant"].astype(str)
    gallery: tuple[np.ndarray, np.ndarray, np.ndarray | None]
    if cfg.reembedded is not None:
        new = read_vectors(cfg.reembedded)
        order = {i: n for n, i in enumerate(new.ids)}
        missing = [i for i in corpus.ids if i not in order]
        if missing:
            raise ValueError(f"{cfg.reembedded}: {len(missing)} corpus ids missing, e.g. {missing[:3]}")
        keep = np.isin(relevant, corpus.ids)
        gallery = (corpus.ids, corpus.embeddings, new.embeddings[[order[i] for i in corpus.ids]])
    else:
        keep = np.isin(relevant, docs.ids)
        gallery = (docs.ids, docs.old, docs.new)
    if not keep.any():
        raise ValueError(f"{cfg.queries}: no query's relevant id is in the gallery scored ("
                         + ("the corpus)" if cfg.reembedded else "the held-out sample; pass --reembedded)"))
    old_q = q.extra.get("embedding_old")
    return Scene(q.embeddings[keep], None if old_q is None else old_q[keep], relevant[keep], *gallery)


def migrate(cfg: MigrationConfig) -> dict[str, object]:
    """Train the adapter, index the old corpus, and report recall on held-out queries."""
    steps = tqdm(total=3, desc="migrate", disable=not cfg.progress)
    corpus, sample = read_vectors(cfg.corpus), read_vectors(cfg.sample)
    steps.set_postfix_str("adapter")
    build_bundle(cfg, corpus, sample)
    steps.update()
    steps.set_postfix_str("report")
    bundle = load_bundle(cfg.out)
    try:
        def along(a: str, b: str) -> Translate:
            route = bundle.graph.best(a, b)
            return lambda x: np.asarray(run_route(bundle.translators, route, x.astype(np.float32)))

        adapter, to_new = along(cfg.new, cfg.old), along(cfg.old, cfg.new)
        docs = held_out(corpus, sample, bundle.manifest.training)
        report: dict[str, object] = {
            "bundle": str(cfg.out), "corpus": len(corpus.ids), "sample": len(sample.ids),
            "sample_share": round(len(sample.ids) / len(corpus.ids), 4),
            "kinds": {e.key: e.kind for e in bundle.manifest.edges},
            "held_out_documents": score_scene(document_scene(corpus, docs), adapter, to_new),
        }
        steps.update()
        if cfg.queries is not None:
            scope = "corpus" if cfg.reembedded is not None else "held_out_documents"
            report["queries"] = {"scope": scope} | score_scene(query_scene(cfg, corpus, docs), adapter, to_new)
        steps.update()
    finally:
        bundle.close()
        steps.close()
    return report


def write_report(report: dict[str, object], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
