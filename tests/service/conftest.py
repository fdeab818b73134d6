"""Small real bundles made by the training code, built once per test session, and apps serving them.

- ``chain_bundle``: modalities a, b, c (16-d, planted rotations), edges a↔b and b↔c (ridge); a→c is two hops.
- ``routed_bundle``: a↔b, b↔c and a direct a↔c whose metrics are rewritten to be worse than a→b→c.
- ``split_bundle``: only a↔b; c has a gallery but no edge, so a→c has no route.
- ``ivf_bundle``: like ``chain_bundle`` with IVF galleries.
Bundles are immutable: a test that needs a damaged one copies a bundle first (``bundle_copy``, tests/conftest.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_edits import Manifest, edit_manifest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from milvuslite import push_bundle
from testbundles import DIMS
from testsettings import settings_for
from tinybundles import tiny_dataset
from tinybundles import train_tiny as _train


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("data") / "abc", DIMS, n=300, relation="rotation")


@pytest.fixture(scope="session")
def chain_bundle(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(dataset, tmp_path_factory.mktemp("bundles") / "chain", [("a", "b"), ("b", "c")])


@pytest.fixture(scope="session")
def ivf_bundle(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(dataset, tmp_path_factory.mktemp("bundles") / "ivf", [("a", "b"), ("b", "c")], "ivf")


@pytest.fixture(scope="session")
def split_bundle(chain_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chain bundle without its b↔c edges in the manifest: c is left on its own."""
    out = Path(shutil.copytree(chain_bundle, tmp_path_factory.mktemp("bundles") / "split"))
    edit_manifest(
        out, lambda m: m.update(edges=[e for e in m["edges"] if "c" not in (e["source"], e["target"])])
    )
    return out


@pytest.fixture(scope="session")
def routed_bundle(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The direct edge a↔c exists but its held-out metrics are poor: the best a→c route is a→b→c."""
    out = _train(dataset, tmp_path_factory.mktemp("bundles") / "routed", [("a", "b"), ("b", "c"), ("a", "c")])

    def worsen_direct_edge(manifest: Manifest) -> None:
        for edge in manifest["edges"]:
            if {edge["source"], edge["target"]} == {"a", "c"}:
                edge["metrics"].update(cycle_cosine=0.6, mrr=0.6, cosine=0.5, r1=0.3)

    edit_manifest(out, worsen_direct_edge)
    return out


def _client(bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(bundle))) as client:
        yield client


@pytest.fixture(scope="session")
def client(chain_bundle: Path) -> Iterator[TestClient]:
    yield from _client(chain_bundle)


@pytest.fixture(scope="session", params=["faiss", "milvus"])
def gallery_client(
    request: pytest.FixtureRequest, chain_bundle: Path, client: TestClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The chain bundle served with its galleries in FAISS, then in Milvus (the session's milvus-lite)."""
    if request.param == "faiss":
        yield client
        return
    uri = request.getfixturevalue("milvus_lite").uri
    bundle = push_bundle(chain_bundle, tmp_path_factory.mktemp("bundles") / "chain-milvus", uri)
    with TestClient(create_app(settings_for(bundle, gallery_backend="milvus", milvus_uri=uri))) as served:
        yield served


@pytest.fixture(scope="session")
def routed_client(routed_bundle: Path) -> Iterator[TestClient]:
    yield from _client(routed_bundle)


@pytest.fixture(scope="session")
def split_client(split_bundle: Path) -> Iterator[TestClient]:
    yield from _client(split_bundle)


@pytest.fixture(scope="session")
def ivf_client(ivf_bundle: Path) -> Iterator[TestClient]:
    yield from _client(ivf_bundle)
