"""Fixtures of the reliability tests: two small real bundles (so a reload visibly changes the bundle
served) and writable copies to damage.

- ``bundle_one``: modalities a, b (8-d), edges a↔b (ridge), galleries for both.
- ``bundle_two``: the same shape trained on other data: another fingerprint, other weights.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_bundles import train_bundle


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def bundle_one(bundles_root: Path) -> Path:
    return train_bundle(bundles_root, "one", seed=0)


@pytest.fixture(scope="session")
def bundle_two(bundles_root: Path) -> Path:
    return train_bundle(bundles_root, "two", seed=1)


@pytest.fixture
def bundle_copy(bundles_root: Path, tmp_path: Path) -> Callable[[Path], Path]:
    """A writable copy of a session bundle, for tests that damage it; beside the session bundles, so a
    server of one of them may reload it (reload names bundles in the served bundle's folder)."""

    def copy(bundle: Path) -> Path:
        return Path(shutil.copytree(bundle, bundles_root / f"{tmp_path.name}-copy-of-{bundle.name}"))

    return copy
