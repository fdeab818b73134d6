"""bench/migration.py's functions on tiny synthetic data: package parsing, one migrate run, the unpaired
runs and the docs tables. Behaviour only; the real-encoder numbers live in docs/migration.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "migration.py"

CONTROL = """\
Package: alpha
Description-md5: 1
Description-en: first tool
 Alpha does one thing
 .
 and does it well.

Package: beta
Description-en: second tool
 Beta does another thing.

Package: gamma
Description-en: third tool
 Beta does another thing.

Package: delta
Description-en: no long description

Package: eps
Description-en: Same text
 same text
"""


def load_module() -> ModuleType:
    return load_script(SCRIPT, "bench_migration")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_module()


def test_parse_packages_summary_and_long_description_never_the_same(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "Translation-en"
    path.write_text(CONTROL)
    items = bench.parse_packages([path])
    by_doc = {it.document: it for it in items}
    assert by_doc["Alpha does one thing and does it well."].summary == "first tool"
    assert len([it for it in items if it.document == "Beta does another thing."]) == 1  # deduplicated
    assert {it.package for it in items} <= {"alpha", "beta", "gamma"}  # no long text, or the same text: out
    assert all(it.summary.casefold() != it.document.casefold() for it in items)


def synthetic(n: int = 400, dim: int = 16, seed: int = 0) -> Any:
    """Two 'encoders' that are rotations of one clustered space; queries are noisy documents."""
    bench = sys.modules["bench_migration"]
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim)) * 3
    base = centres[rng.integers(0, 20, n)] + rng.normal(size=(n, dim))
    query = base + 0.3 * rng.normal(size=(n, dim))
    rot = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    items = [bench.Item(f"p{i}", f"s{i}", f"d{i}") for i in range(n)]
    f32 = np.float32
    return bench.Embedded(items, {"minilm": query.astype(f32), "e5": (query @ rot).astype(f32)},
                          {"minilm": base.astype(f32), "e5": (base @ rot).astype(f32)})


def test_one_migrate_run_and_unpaired(bench: ModuleType, tmp_path: Path) -> None:
    data = synthetic()
    run = bench.migration_run(data, "minilm", "e5", 0.2, 0, tmp_path, queries=100, kind="procrustes")
    assert run["sample"] == 80 and run["queries"] == 100 and run["gallery"] == 400
    assert run["recall_retained"] > 0.9  # a planted rotation: the adapter is as good as re-embedding
    found = bench.unpaired_run(data, 10, 0, gallery=100, side=100, reserve=10)
    assert found["ridge_r1"] >= 0 and found["procrustes_r1"] > 0.5 and found["unpaired_r1"] > 0.5
    report = {"data": {"documents": 400, "max_words": 40, "queries_per_run": 100}, "seeds": [0],
              "migration": [run], "unpaired": [found, bench.unpaired_run(data, 0, 0, gallery=100, side=100,
                                                                          reserve=10)]}
    json.dumps(report)
    docs = tmp_path / "migration.md"
    docs.write_text(f"before\n{bench.BEGIN}\nold\n{bench.END}\nafter\n")
    bench.write_docs(report, docs)
    text = docs.read_text()
    assert "minilm → e5" in text and "| 10 |" in text and "old\n" not in text and text.endswith("after\n")
    bench.plot(report, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0
