"""Fixtures every suite shares (helpers that are not fixtures live in tests/support)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from encoder_bundle import EncoderBundles, build, missing


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Callable[[Path], Path]:
    """A writable copy of a session bundle (same folder name), for tests that damage or edit it."""

    def copy(bundle: Path) -> Path:
        return Path(shutil.copytree(bundle, Path(tempfile.mkdtemp(dir=tmp_path)) / bundle.name))

    return copy


@pytest.fixture(scope="session")
def encoder_bundles(tmp_path_factory: pytest.TempPathFactory) -> EncoderBundles:
    """The demo bundle with its real encoders (and the same translators without them); skips without
    the encoders extra or the Debian stamps. About a minute: training plus three verified exports."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    return build(tmp_path_factory.mktemp("encoders"))
