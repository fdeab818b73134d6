"""Gallery benchmark: a large synthetic gallery with flat, HNSW, IVF and IVF-PQ indexes.

    python bench/gallery.py --rows 1000000 --dim 384 --types flat,ivf,ivf-pq,hnsw --work /tmp/gallery-bench

Rows are clustered and anisotropic like real embeddings (1,000 clusters, a decaying spectrum, a common
offset), made in chunks from a seed; queries are fresh rows of the same distribution, never gallery
items. Per index type it builds a bundle through the same code as ``latent-bridge index`` (search effort
tuned to recall@10 ≥ the target on held-out queries), starts ``latent-bridge serve`` on a loopback port and
measures: build time, file sizes, start time (process start to ``/readyz``), server RSS, single-query
p50/p99 in-process (this process, one FAISS thread like the server) and through HTTP (one client,
sequential, base64 query), recall@10 against exact search, and upsert throughput through
``PUT /galleries/x/items`` (batches of 1,000, each fsynced). Prints a Markdown table. It measures; it
asserts nothing.

``--backend milvus`` pushes each gallery into Milvus as well (``latent-bridge index --backend milvus``) and
serves it from there: in-process latency is then ``MilvusGallery.search`` (a network round trip), recall@10
is measured on the Milvus results against exact search, and RAM adds the Milvus process's RSS. Without
``--milvus-uri`` it starts a milvus-lite server of its own (``python -m milvus_lite server``).

    python bench/gallery.py --rows 100000 --types hnsw --backend milvus
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

import faiss  # noqa: E402
import httpx  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from latent_bridge.service.bundle.manifest import (  # noqa: E402
    SCHEMA_VERSION,
    Lineage,
    Manifest,
    ModalitySpec,
    read_manifest,
    write_manifest,
)
from latent_bridge.service.galleries.backend import SearchOptions  # noqa: E402
from latent_bridge.service.galleries.faiss_gallery import open_gallery  # noqa: E402
from latent_bridge.service.galleries.milvus_gallery import MilvusGallery, MilvusLink  # noqa: E402
from latent_bridge.training.bundling.galleries import CHUNK_ROWS, Chunk, GalleryRows  # noqa: E402
from latent_bridge.training.bundling.indexing import IndexOptions, _rebuilt  # noqa: E402
from latent_bridge.training.bundling.milvus_push import MilvusTarget  # noqa: E402
from latent_bridge.training.bundling.tuning import exact_neighbours  # noqa: E402
from milvuslite import LiteServer  # noqa: E402
from serverprocess import running_server  # noqa: E402

KEY = "bench-admin-key-0123456789"
CLUSTERS = 1000


class Generator:
    """Clustered, anisotropic rows: deterministic per chunk, so they can be streamed twice."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.centres = rng.standard_normal((CLUSTERS, dim)).astype(np.float32)
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        spectrum = 1.0 / np.sqrt(np.arange(1, dim + 1))
        self.mix = (q * spectrum).astype(np.float32)
        self.offset = (3.0 * rng.standard_normal(dim) / np.sqrt(dim)).astype(np.float32)
        self.seed = seed

    def rows(self, start: int, n: int, stream: int = 0) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream, start])
        labels = rng.integers(0, CLUSTERS, n)
        x = self.centres[labels] + 0.7 * rng.standard_normal((n, self.dim), dtype=np.float32)
        return (x @ self.mix + self.offset).astype(np.float32)


def gallery_rows(gen: Generator, n: int) -> GalleryRows:
    def chunks() -> Iterator[Chunk]:
        for start in range(0, n, CHUNK_ROWS):
            count = min(CHUNK_ROWS, n - start)
            ids = pa.array([f"item-{i}" for i in range(start, start + count)], pa.string())
            label = pa.array([f"shelf-{i % 10}" for i in range(start, start + count)], pa.string())
            yield Chunk(ids, gen.rows(start, count), pa.table({"shelf": label}))

    return GalleryRows("x", f"synthetic {n}×{gen.dim}", n, gen.dim, chunks)


def parent_bundle(work: Path, dim: int) -> Path:
    parent = work / "empty"
    if not parent.exists():
        parent.mkdir(parents=True)
        (parent / "translators").mkdir()
        (parent / "index").mkdir()
        write_manifest(
            Manifest(
                schema_version=SCHEMA_VERSION,
                name="empty",
                created_at=datetime.now(UTC),
                modalities=[ModalitySpec(name="x", dim=dim)],
                edges=[],
                dataset_fingerprint="synthetic",
            ),
            parent,
        )
    return parent


def folder_bytes(bundle: Path, files: list[str]) -> int:
    return sum((bundle / f).stat().st_size for f in files)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def in_process(bundle: Path, queries: np.ndarray, milvus: str | None) -> tuple[float, float]:
    manifest = read_manifest(bundle)
    faiss.omp_set_num_threads(1)
    spec = manifest.galleries[0]
    gallery: Any = (
        open_gallery(spec, bundle, manifest, replay=False)
        if milvus is None
        else MilvusGallery(spec, manifest.modality(spec.modality).dim, MilvusLink(milvus, None, 60.0))
    )
    times = []
    for q in queries:
        started = time.perf_counter()
        gallery.search(q[None, :], 10, SearchOptions())
        times.append(time.perf_counter() - started)
    return percentiles(times)


def http_queries(base: str, queries: np.ndarray) -> tuple[float, float]:
    times = []
    with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client:
        for q in queries:
            body = {"from": "x", "to": "x", "vector": base64.b64encode(q.astype("<f4").tobytes()).decode(),
                    "encoding": "base64", "k": 10}
            started = time.perf_counter()
            response = client.post("/retrieve", json=body)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
    return percentiles(times)


def upserts(base: str, gen: Generator, batches: int, batch: int) -> float:
    with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client:
        started = time.perf_counter()
        for b in range(batches):
            rows = gen.rows(b * batch, batch, stream=2)
            body = {"ids": [f"new-{b}-{i}" for i in range(batch)],
                    "vectors": base64.b64encode(rows.astype("<f4").tobytes()).decode(), "encoding": "base64",
                    "payload": [{"shelf": "new"} for _ in range(batch)]}
            client.put("/galleries/x/items", json=body).raise_for_status()
        return batches * batch / (time.perf_counter() - started)


def run_type(
    args: argparse.Namespace, index_type: str, gen: Generator, queries: Path, held_out: np.ndarray
) -> dict[str, object]:
    rows = args.hnsw_rows if index_type == "hnsw" and args.hnsw_rows else args.rows
    bundle = args.work / f"g-{index_type}-{rows}"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.rmtree(bundle.with_name(bundle.name + ".writes"), ignore_errors=True)
    started = time.perf_counter()
    target = MilvusTarget(args.milvus_uri, prefix="bench_") if args.backend == "milvus" else None
    options = IndexOptions(index_type=index_type, target_recall=args.target, queries=queries, progress=False,
                           milvus=target)
    manifest = _rebuilt(parent_bundle(args.work, args.dim), bundle, {"x": gallery_rows(gen, rows)}, options,
                        lambda p: Lineage(parent=p.name, new_galleries=["x"]))
    build = time.perf_counter() - started
    spec = manifest.galleries[0]
    sizes = {f: (bundle / f).stat().st_size for f, _ in spec.files()}
    result: dict[str, object] = {
        "type": index_type, "rows": rows, "build_s": build,
        "index_mib": sizes[spec.index_file] / 2**20, "total_mib": sum(sizes.values()) / 2**20,
        "effort": f"{spec.search.parameter}={spec.search.value}" if spec.search.parameter else "exact",
        "recall": spec.search.recall_at_10,
    }
    milvus = args.milvus_uri if args.backend == "milvus" else None
    if milvus is not None:
        result["recall"] = milvus_recall(bundle, gen, rows, held_out[: args.queries], milvus)
        tuned = spec.milvus.search if spec.milvus is not None else None
        if tuned is not None and tuned.parameter:  # the effort tuned on the collection, which it searches with
            result["effort"] = f"{tuned.parameter}={tuned.value} (FAISS: {result['effort']})"
    result["inproc_p50"], result["inproc_p99"] = in_process(bundle, held_out[: args.queries], milvus)
    launched = time.perf_counter()
    env = {"LATENT_BRIDGE_ADMIN_KEY": KEY, "LATENT_BRIDGE_ACCESS_LOG": "false"}
    if milvus is not None:
        env |= {"LATENT_BRIDGE_GALLERY_BACKEND": "milvus", "LATENT_BRIDGE_MILVUS_URI": milvus,
                "LATENT_BRIDGE_MILVUS_TIMEOUT": "30"}
    with running_server(bundle, env=env) as server:
        result["start_s"] = time.perf_counter() - launched
        result["rss_start_mib"] = rss_mib(server.process.pid)
        result["http_p50"], result["http_p99"] = http_queries(server.base, held_out[: args.queries])
        result["rss_mib"] = rss_mib(server.process.pid)
        if args.lite is not None and args.lite.process is not None:
            result["milvus_rss_mib"] = rss_mib(args.lite.process.pid)
        if index_type == args.upsert_type:
            result["upserts_per_s"] = upserts(server.base, gen, args.upsert_batches, 1000)
        server.stop()
    (args.work / f"{bundle.name}.manifest.json").write_text((bundle / "manifest.json").read_text())
    if not args.keep:
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(bundle.with_name(bundle.name + ".writes"), ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def milvus_recall(bundle: Path, gen: Generator, rows: int, queries: np.ndarray, uri: str) -> float:
    """Recall@10 of the Milvus collection's answers against exact search over the same rows."""
    manifest = read_manifest(bundle)
    spec = manifest.galleries[0]
    assert spec.milvus is not None and spec.milvus.mean is not None
    mean = np.asarray(spec.milvus.mean, np.float32)
    vectors = np.concatenate([gen.rows(s, min(CHUNK_ROWS, rows - s)) for s in range(0, rows, CHUNK_ROWS)])
    truth = exact_neighbours(vectors, mean, queries)
    gallery = MilvusGallery(spec, len(mean), MilvusLink(uri, None, 60.0))
    found = gallery.search(queries, 10, SearchOptions())
    pairs = zip(found, truth, strict=True)
    hits = sum(len({h.id for h in got} & {f"item-{i}" for i in expected}) for got, expected in pairs)
    return hits / (10 * len(queries))


def table(results: list[dict[str, object]]) -> str:
    head = ("| index | items | build s | index MiB | files MiB | start s | RSS MiB (start → after) | effort | "
            "recall@10 | in-process p50 / p99 ms | HTTP p50 / p99 ms | upserts/s |\n|" + "---|" * 12)
    lines = [head]
    for r in results:
        ups = f"{r['upserts_per_s']:,.0f}" if "upserts_per_s" in r else ""
        rss = f"{r['rss_start_mib']:.0f} → {r['rss_mib']:.0f}"
        if "milvus_rss_mib" in r:
            rss += f" + Milvus {r['milvus_rss_mib']:.0f}"
        lines.append(
            f"| {r['type']} | {r['rows']:,} | {r['build_s']:.0f} | {r['index_mib']:.0f} | {r['total_mib']:.0f} | "
            f"{r['start_s']:.1f} | {rss} | {r['effort']} | {r['recall']:.3f} | "
            f"{r['inproc_p50']:.2f} / {r['inproc_p99']:.2f} | {r['http_p50']:.2f} / {r['http_p99']:.2f} | {ups} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hnsw-rows", type=int, default=None, help="fewer rows for HNSW (slow to build on few cores)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--types", default="flat,ivf,ivf-pq,hnsw")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--queries", type=int, default=300, help="single queries timed per side")
    parser.add_argument("--upsert-type", default="ivf-pq", help="the index type whose server takes the upserts")
    parser.add_argument("--upsert-batches", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gallery-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the bundles (several GB at 1M rows)")
    parser.add_argument("--backend", choices=["faiss", "milvus"], default="faiss")
    parser.add_argument("--milvus-uri", dest="milvus_uri", default=None,
                        help="a running Milvus (default with --backend milvus: a milvus-lite server of its own)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.lite = None
    if args.backend == "milvus" and args.milvus_uri is None:
        shutil.rmtree(args.work / "milvus-lite", ignore_errors=True)
        args.lite = LiteServer(args.work / "milvus-lite")
        args.lite.start()
        args.milvus_uri = args.lite.uri
    gen = Generator(args.dim)
    held_out = gen.rows(0, 1000, stream=1)
    queries = args.work / "queries.parquet"
    pq.write_table(pa.table({"embedding": pa.array(list(held_out[500:]), pa.list_(pa.float32()))}), queries)
    load_before = os.getloadavg()
    try:
        results = [run_type(args, t, gen, queries, held_out[:500]) for t in args.types.split(",")]
    finally:
        if args.lite is not None:
            args.lite.kill()
    load_after = os.getloadavg()
    print(f"\nbackend {args.backend}; {args.rows:,} × {args.dim} rows, {os.cpu_count()} CPUs, 1-min load average "
          f"{load_before[0]:.1f} before and {load_after[0]:.1f} after; recall tuned on 500 held-out queries, "
          f"latency timed on {args.queries} others.\n")
    print(table(results))


if __name__ == "__main__":
    main()
