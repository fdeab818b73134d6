"""`latent-bridge translate`: translate a whole corpus file offline (a new encoder, no re-embedding).

The corpus is a Parquet file with an ``embedding`` column of the source modality (and any other columns:
id, sample, payload). It is streamed in batches, each translated by the server's own code (the bundle
loaded and checked by ``load_bundle``, the route run by ``run_route``), and written as it goes: memory stays
one batch whatever the corpus size. The output has the same columns with ``embedding`` in the target space.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EMBEDDING = "embedding"
DEFAULT_BATCH = 4096


@dataclass(frozen=True)
class CorpusTranslation:
    rows: int
    path: tuple[str, ...]
    seconds: float


def embedding_matrix(column: pa.ChunkedArray | pa.Array, dim: int, where: Path) -> np.ndarray:
    """The (n, dim) float32 rows of a list column, without a Python object per row."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)
            or pa.types.is_fixed_size_list(array.type)):
        raise ValueError(f"{where}: column {EMBEDDING!r} is {array.type}, expected a list of floats")
    if array.null_count:
        raise ValueError(f"{where}: column {EMBEDDING!r} has {array.null_count} empty rows")
    values = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if values.size != len(array) * dim:
        raise ValueError(f"{where}: embeddings are not all {dim}-d (the bundle's source dimension)")
    return values.reshape(len(array), dim)


def list_column(y: np.ndarray) -> pa.Array:
    offsets = pa.array(np.arange(0, y.size + 1, y.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(y).ravel(), type=pa.float32()))


def translate_corpus(
    bundle_dir: Path,
    source: str,
    target: str,
    corpus: Path,
    out: Path,
    batch: int = DEFAULT_BATCH,
    path: list[str] | None = None,
    progress: bool = True,
) -> CorpusTranslation:
    """Translate every row of ``corpus`` from ``source`` to ``target``; write ``out`` batch by batch."""
    from latent_bridge.service.bundle.loader import load_bundle
    from latent_bridge.service.engine.translate import run_route
    from tqdm import tqdm

    started = time.perf_counter()
    bundle = load_bundle(Path(bundle_dir))
    route = bundle.graph.resolve(source, target, path)
    dim = bundle.modalities[source].dim
    reader = pq.ParquetFile(corpus)
    if EMBEDDING not in reader.schema_arrow.names:
        raise ValueError(f"{corpus}: no column {EMBEDDING!r} (found {reader.schema_arrow.names})")
    schema = reader.schema_arrow.set(
        reader.schema_arrow.get_field_index(EMBEDDING), pa.field(EMBEDDING, pa.list_(pa.float32()))
    )
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    index = schema.get_field_index(EMBEDDING)
    others = [name for name in schema.names if name != EMBEDDING]  # float statistics cost more than they help
    rows = 0
    bar = tqdm(total=reader.metadata.num_rows, unit="row", disable=not progress, desc=" → ".join(route.path))
    # Reading and writing run in their own threads (pyarrow releases the GIL), overlapping the translation.
    with ThreadPoolExecutor(max_workers=2) as io:
        try:
            with pq.ParquetWriter(partial, schema, use_dictionary=others, write_statistics=others) as writer:
                batches = prefetched(reader.iter_batches(batch_size=batch), io)
                written: Future[None] | None = None
                for record in batches:
                    x = embedding_matrix(record.column(EMBEDDING), dim, corpus)
                    y = run_route(bundle.translators, route, x, bundle.l2_inputs)
                    if written is not None:
                        written.result()
                    out_batch = record.set_column(index, schema.field(EMBEDDING), list_column(y))
                    written = io.submit(writer.write_batch, out_batch)
                    rows += len(x)
                    bar.update(len(x))
                if written is not None:
                    written.result()
            partial.replace(out)  # a killed run leaves no half-written output under the final name
        finally:
            bar.close()
            partial.unlink(missing_ok=True)
    return CorpusTranslation(rows, route.path, time.perf_counter() - started)


def prefetched(batches: Iterator[pa.RecordBatch], pool: ThreadPoolExecutor) -> Iterator[pa.RecordBatch]:
    """The same batches, each read (decoded) in ``pool`` while the caller works on the one before."""
    ahead = pool.submit(next, batches, None)
    while (current := ahead.result()) is not None:
        ahead = pool.submit(next, batches, None)
        yield current
