"""A trained bundle and a corpus for modality c twenty times larger than its training rows, built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gallerycorpus import TRAINING_ROWS, write_corpus


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from latent_bridge.training.config import TrainConfig
    from latent_bridge.training.datasets.synthetic import make_dataset
    from latent_bridge.training.train import train

    root = tmp_path_factory.mktemp("galleries")
    data = make_dataset(root / "data", n=TRAINING_ROWS, dims={"a": 16, "b": 16, "c": 16}, noise=0.1)
    bundle = root / "trained"
    train(TrainConfig(data=data, out=bundle, kind="ridge", edges=[("a", "b"), ("b", "c")], progress=False))
    return data, bundle


@pytest.fixture(scope="session")
def corpus(trained: tuple[Path, Path]) -> Path:
    data, bundle = trained
    return write_corpus(data, bundle.parent / "corpus.parquet")


@pytest.fixture(scope="session")
def indexed(trained: tuple[Path, Path], corpus: Path) -> Path:
    """The trained bundle with c's gallery built from the corpus (HNSW, tuned)."""
    from latent_bridge.cli import main

    out = trained[1].parent / "indexed"
    main(["index", "--bundle", str(trained[1]), "--modality", "c", "--data", str(corpus),
          "--index-type", "hnsw", "--out", str(out), "--quiet"])
    return out


@pytest.fixture
def writable(indexed: Path, tmp_path: Path) -> Path:
    """A private copy of the indexed bundle, so each test's write log starts empty."""
    return Path(shutil.copytree(indexed, tmp_path / "bundle"))
