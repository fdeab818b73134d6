"""Throughput of `latent-bridge translate` against the in-process translator it wraps.

In-process: the whole corpus already in memory as one float32 matrix, ``run_route`` over it batch by batch
(translation only). The command: read the Parquet corpus, translate, write Parquet, end to end (bundle
load included). Prints rows/s of both and their ratio; asserts nothing (timings depend on the machine).

    python bench/translate_corpus.py --bundle models/demo --from audio --to image --rows 200000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latent_bridge.corpus import DEFAULT_BATCH, list_column, translate_corpus  # noqa: E402
from latent_bridge.service.bundle.loader import load_bundle  # noqa: E402
from latent_bridge.service.engine.translate import run_route  # noqa: E402


def make_corpus(bundle: Path, source: str, rows: int, out: Path) -> np.ndarray:
    """``rows`` real source embeddings (the bundle's gallery, repeated) with ids, written to ``out``."""
    served = load_bundle(bundle)
    gallery = served.galleries[source]
    real = np.concatenate([gallery.vector(i) for i in range(gallery.size)])
    x = np.ascontiguousarray(real[np.arange(rows) % len(real)])
    ids = pa.array([f"{source}-{i}" for i in range(rows)])
    pq.write_table(pa.table({"id": ids, "embedding": list_column(x)}), out)
    return x


def in_process(bundle: Path, source: str, target: str, x: np.ndarray, batch: int) -> float:
    served = load_bundle(bundle)
    route = served.graph.resolve(source, target)
    started = time.perf_counter()
    for i in range(0, len(x), batch):
        run_route(served.translators, route, x[i : i + batch], served.l2_inputs)
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("models/demo"))
    parser.add_argument("--from", dest="source", default="audio")
    parser.add_argument("--to", dest="target", default="image")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        corpus, out = Path(work) / "corpus.parquet", Path(work) / "out.parquet"
        x = make_corpus(args.bundle, args.source, args.rows, corpus)
        load_before = os.getloadavg()[0]
        direct, command = [], []
        for _ in range(args.repeats):
            direct.append(in_process(args.bundle, args.source, args.target, x, args.batch))
            done = translate_corpus(args.bundle, args.source, args.target, corpus, out, args.batch, progress=False)
            command.append(done.rows / done.seconds)
            out.unlink()
        print(f"{args.rows} rows {' → '.join(done.path)}, batch {args.batch}, {os.cpu_count()} CPUs, "
              f"1-min load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
        print(f"in-process run_route: {max(direct):,.0f} rows/s (runs: {', '.join(f'{r:,.0f}' for r in direct)})")
        print(f"latent-bridge translate: {max(command):,.0f} rows/s (runs: {', '.join(f'{r:,.0f}' for r in command)})")
        print(f"ratio: {max(command) / max(direct):.2f}")


if __name__ == "__main__":
    main()
