"""The Milvus gallery backend: the same answers as exact FAISS on the demo's real embeddings, filters quoted
safely, and Milvus going away (at start, or under load) answered 503 with the reason, never a hang, with
recovery once it is back and no thread left behind."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from latent_bridge.service.bundle.manifest import GallerySearch, GallerySpec
from latent_bridge.service.galleries.backend import SearchOptions
from latent_bridge.service.galleries.faiss_gallery import Gallery, read_index
from latent_bridge.service.galleries.milvus_gallery import MilvusGallery, MilvusLink, filter_expression
from latent_bridge.service.galleries.table import open_table
from latent_bridge.training.bundling.galleries import write_gallery_files
from latent_bridge.training.bundling.indexing import corpus_rows
from latent_bridge.training.bundling.milvus_push import MilvusTarget, push_gallery
from milvuslite import LiteServer, milvus_env, push_bundle
from serverprocess import HOST, Server, command, free_port

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
K = 10
QUERIES = 200  # demo rows per modality used as queries
TIMEOUT = 1.0  # LATENT_BRIDGE_MILVUS_TIMEOUT in the outage test
BODY = {"from": "a", "to": "c", "vector": [0.1] * 16, "k": 5}


def test_filters_quote_values_and_keys() -> None:
    expression = filter_expression({"shelf": 'x" or id != "', "n": [1, 2.5, True, None]})
    assert expression == (
        '(payload["shelf"] == "x\\" or id != \\"") and '
        '(payload["n"] == 1 or payload["n"] == 2.5 or payload["n"] == true or not exists payload["n"])'
    )


def _faiss_gallery(staging: Path, spec: GallerySpec, dim: int) -> Gallery:
    assert spec.vectors_file is not None and spec.lookup_file is not None
    table = open_table(staging / spec.ids_file, staging / spec.lookup_file)
    vectors = np.load(staging / spec.vectors_file, mmap_mode="r")
    return Gallery(spec, read_index(staging / spec.index_file), table, vectors, dim, staging / spec.index_file)


@pytest.mark.slow
def test_on_the_demo_milvus_hnsw_agrees_with_exact_faiss(milvus_lite: LiteServer, tmp_path: Path) -> None:
    """200 real demo embeddings (text and audio, 384-d) query their own gallery, themselves excluded: Milvus
    (HNSW, efSearch 64) and exact FAISS share ≥ 95% of the top 10, with the same scores to 1e-4."""
    for modality in ("text", "audio"):
        path = DEMO / f"{modality}.parquet"
        rows = corpus_rows(path, modality, len(pq.read_table(path, columns=["embedding"]).column(0)[0]))
        exact = _faiss_gallery(tmp_path / f"{modality}-flat", write_gallery_files(tmp_path / f"{modality}-flat",
                                                                                  rows, "flat"), rows.dim)
        staged = tmp_path / f"{modality}-hnsw"
        hnsw = _faiss_gallery(staged, write_gallery_files(staged, rows, "hnsw"), rows.dim)
        spec = push_gallery(hnsw, "demo", MilvusTarget(milvus_lite.uri, prefix=f"demo_{os.getpid()}_"))
        spec = spec.model_copy(update={"search": GallerySearch(parameter="efSearch", value=64, limit=64)})
        milvus = MilvusGallery(spec, rows.dim, MilvusLink(milvus_lite.uri, None, 30.0))
        rows_picked = np.sort(np.random.default_rng(0).permutation(exact.size)[:QUERIES])
        ids = [exact.table.records([int(r)])[0][0] for r in rows_picked]
        queries = np.asarray(exact.vectors[rows_picked])
        options = SearchOptions(exclude=ids)
        truth, found = exact.search(queries, K, options), milvus.search(queries, K, options)
        shared, differences = 0, []
        for expected, got in zip(truth, found, strict=True):
            scores = {h.id: h.score for h in expected}
            common = [h for h in got if h.id in scores]
            shared += len(common)
            differences += [abs(h.score - scores[h.id]) for h in common]
        overlap = shared / (K * len(ids))
        assert overlap >= 0.95, f"{modality}: top-{K} overlap {overlap:.3f}"
        assert max(differences) <= 1e-4, f"{modality}: scores differ by up to {max(differences):.2e}"


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _wait(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {seconds} s")


def _status(client: httpx.Client, path: str = "/readyz") -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return 0


@pytest.mark.slow
def test_milvus_away_gives_503_with_a_reason_never_a_hang_and_the_server_recovers(
    indexed: Path, tmp_path: Path
) -> None:
    milvus = LiteServer(tmp_path / "milvus")
    milvus.start()
    try:
        bundle = push_bundle(indexed, tmp_path / "bundle", milvus.uri)
        milvus.kill()  # unreachable when the server starts
        port = free_port()
        env = os.environ | milvus_env(milvus.uri) | {"LATENT_BRIDGE_MILVUS_TIMEOUT": str(TIMEOUT)}
        with open(tmp_path / "server.log", "wb") as log:
            process = subprocess.Popen([*command(), "serve", "--bundle", str(bundle), "--host", HOST, "--port",
                                        str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(process, f"http://{HOST}:{port}", port, open(tmp_path / "server.log", "rb"))  # noqa: SIM115
        try:
            with httpx.Client(base_url=server.base, timeout=10) as client:
                _wait(lambda: _status(client, "/healthz") == 200, 60, "the server answering")
                not_ready = client.get("/readyz")
                assert not_ready.status_code == 503 and "Milvus at http://" in not_ready.json()["detail"]
                down = client.post("/retrieve", json=BODY)
                assert down.status_code == 503 and down.headers["content-type"] == "application/problem+json"
                assert down.json()["type"].endswith("gallery-unavailable") and down.json()["reason"]

                milvus.start()  # back: ready and searching without a restart
                _wait(lambda: _status(client) == 200, 15, "ready once Milvus is back")
                first = client.post("/retrieve", json=BODY)
                assert first.status_code == 200, first.text
                before = first.json()["results"]
                threads = _threads(process.pid)

                answers: list[tuple[int, float]] = []
                stop = threading.Event()

                def load() -> None:
                    with httpx.Client(base_url=server.base, timeout=10) as c:
                        while not stop.is_set():
                            started = time.monotonic()
                            answers.append((c.post("/retrieve", json=BODY).status_code, time.monotonic() - started))

                workers = [threading.Thread(target=load) for _ in range(4)]
                for w in workers:
                    w.start()
                time.sleep(0.5)
                milvus.kill()  # under load
                time.sleep(2 * TIMEOUT + 1)  # requests keep coming while Milvus is gone
                stop.set()
                for w in workers:
                    w.join()
                codes = {code for code, _ in answers}
                assert codes <= {200, 503} and 503 in codes, codes
                assert max(s for _, s in answers) < 3 * TIMEOUT + 1, "a request waited past its bound"

                milvus.start()
                _wait(lambda: client.post("/retrieve", json=BODY).status_code == 200, 15, "searches once back")
                assert client.post("/retrieve", json=BODY).json()["results"] == before
                assert _threads(process.pid) <= threads + 4, "threads left behind by the outage"
        finally:
            server.stop()
            server.log_file.close()
    finally:
        milvus.kill()


@pytest.mark.slow
def test_index_to_milvus_tunes_the_effort_on_the_collection_itself(
    trained: tuple[Path, Path], corpus: Path, milvus_lite: LiteServer, tmp_path: Path
) -> None:
    """Milvus trains its own IVF lists, so FAISS's nprobe does not carry over: `index --backend milvus`
    sweeps the effort against the collection, records it in the manifest, and the backend searches with it."""
    from latent_bridge.training.bundling.indexing import IndexOptions, index_corpora

    target = MilvusTarget(milvus_lite.uri, prefix=f"ivf_{os.getpid()}_")
    options = IndexOptions(index_type="ivf", progress=False, milvus=target)
    manifest = index_corpora(trained[1], {"c": corpus}, tmp_path / "ivf-in-milvus", options)
    spec = next(g for g in manifest.galleries if g.modality == "c")
    assert spec.milvus is not None and spec.milvus.index_type == "IVF_FLAT"
    tuned = spec.milvus.search
    assert tuned is not None and tuned.parameter == "nprobe" and tuned.value is not None
    assert tuned.recall_at_10 is not None and tuned.recall_at_10 >= options.target_recall
    served = MilvusGallery(spec, 16, MilvusLink(milvus_lite.uri, None, 30.0))  # c is 16-d
    assert served.spec.search == tuned
