"""A trained bundle and a corpus for modality c twenty times larger than its training rows, built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gallerycorpus import TRAINING_ROWS, Served, write_corpus
from milvuslite import LiteServer, push_bundle


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from latent_bridge.training.config import TrainConfig
    from latent_bridge.training.datasets.builders.synthetic import make_dataset
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


@pytest.fixture(scope="session")
def indexed_in_milvus(indexed: Path, milvus_lite: LiteServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The indexed bundle with its galleries pushed into the session's milvus-lite."""
    return push_bundle(indexed, tmp_path_factory.mktemp("in-milvus") / "indexed", milvus_lite.uri)


def _milvus_settings(request: pytest.FixtureRequest) -> dict[str, object]:
    return {"gallery_backend": "milvus", "milvus_uri": request.getfixturevalue("milvus_lite").uri}


@pytest.fixture(params=["faiss", "milvus"])
def served(request: pytest.FixtureRequest, indexed: Path) -> Served:
    """The indexed bundle served from FAISS, then from Milvus (milvus-lite): the same answers expected."""
    if request.param == "faiss":
        return indexed, {}
    return request.getfixturevalue("indexed_in_milvus"), _milvus_settings(request)


@pytest.fixture(params=["faiss", "milvus"])
def writable_served(request: pytest.FixtureRequest, indexed: Path, tmp_path: Path) -> Served:
    """A private copy of the indexed bundle (FAISS: its own write log; Milvus: collections of its own)."""
    if request.param == "faiss":
        return Path(shutil.copytree(indexed, tmp_path / "bundle")), {}
    settings = _milvus_settings(request)
    return push_bundle(indexed, tmp_path / "bundle", str(settings["milvus_uri"])), settings
