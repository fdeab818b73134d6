"""`latent-bridge migrate` end to end on a small synthetic corpus: two encoders of one latent, a 10% sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from latent_bridge.cli import main
from latent_bridge.service.bundle.loader import load_bundle


def write(path: Path, ids: list[str], emb: np.ndarray, **columns: object) -> Path:
    pd.DataFrame({"id": ids, "embedding": list(emb.astype(np.float32)), **columns}).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 1,500-document corpus; old encoder 32-d, new encoder 24-d, both linear in a shared 16-d latent;
    queries are other texts about a document (its latent plus noise), the old and new encoders' versions."""
    root = tmp_path_factory.mktemp("migration")
    rng = np.random.default_rng(0)
    n, latent = 1500, 16
    docs = rng.standard_normal((n, latent))
    enc_old, enc_new = rng.standard_normal((latent, 32)), rng.standard_normal((latent, 24))
    ids = [f"doc{i}" for i in range(n)]
    old = docs @ enc_old + 0.05 * rng.standard_normal((n, 32))
    new = docs @ enc_new + 0.05 * rng.standard_normal((n, 24))
    sample = rng.choice(n, 150, replace=False)
    asked = rng.choice(n, 300, replace=False)
    q = docs[asked] + 0.3 * rng.standard_normal((300, latent))
    return {
        "corpus": write(root / "corpus.parquet", ids, old, title=[f"title {i}" for i in ids]),
        "sample": write(root / "sample.parquet", [ids[i] for i in sample], new[sample]),
        "reembedded": write(root / "reembedded.parquet", ids, new),
        "queries": write(root / "queries.parquet", [f"q{i}" for i in range(300)], q @ enc_new,
                         relevant=[ids[i] for i in asked], embedding_old=list((q @ enc_old).astype(np.float32))),
        "root": root,
    }


def test_migrate_trains_the_adapter_indexes_the_old_corpus_and_reports_recall_retained(
        corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = corpus["root"] / "migrated"
    main(["migrate", "--corpus", str(corpus["corpus"]), "--sample", str(corpus["sample"]), "--out", str(out),
          "--queries", str(corpus["queries"]), "--reembedded", str(corpus["reembedded"]), "--quiet"])
    printed = capsys.readouterr().out
    assert "recall retained" in printed
    report = json.loads((corpus["root"] / "migrated.migration.json").read_text())
    q = report["queries"]
    assert q["scope"] == "corpus" and q["gallery"] == 1500 and q["queries"] == 300
    assert q["reembedded"]["r10"] > 0.5 and q["old_encoder"]["r10"] > 0.5
    assert q["recall_retained_adapter"] >= 0.9 and q["recall_retained_corpus_side"] >= 0.9
    assert report["held_out_documents"]["adapter"]["r10"] >= 0.9
    bundle = load_bundle(out)  # the server takes new-encoder queries against the old corpus
    assert bundle.gallery("old").count() == 1500
    assert {e.key for e in bundle.manifest.edges} == {"new__old", "old__new"}
    bundle.close()


def test_migrate_without_queries_reports_on_the_held_out_documents(corpus: dict[str, Path]) -> None:
    out = corpus["root"] / "self"
    report_path = corpus["root"] / "self.json"
    main(["migrate", "--corpus", str(corpus["corpus"]), "--sample", str(corpus["sample"]), "--out", str(out),
          "--report", str(report_path), "--quiet"])
    report = json.loads(report_path.read_text())
    docs = report["held_out_documents"]
    assert docs["gallery"] == 1500 and docs["recall_retained_adapter"] >= 0.9
    assert "queries" not in report


def test_migrate_refuses_sample_ids_outside_the_corpus(corpus: dict[str, Path], tmp_path: Path) -> None:
    sample = write(tmp_path / "s.parquet", ["nope"], np.zeros((1, 24)))
    with pytest.raises(SystemExit, match="not in the corpus"):
        main(["migrate", "--corpus", str(corpus["corpus"]), "--sample", str(sample), "--out", str(tmp_path / "m"),
              "--quiet"])
