"""Fixtures every suite shares (helpers that are not fixtures live in tests/support)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import milvuslite
import pytest
from encoder_bundle import EncoderBundles, build, bundles_at, missing
from filelock import FileLock


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of the real encoders (the bundle needs the Debian media) or the browser need Debian packages
    too: ``-m system`` selects every test that ``make system-packages`` lets run (CI's second step)."""
    for item in items:
        needs_media = "encoder_bundles" in getattr(item, "fixturenames", ())
        if needs_media or item.get_closest_marker("encoders") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.system)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A test that skips for want of a Debian package but is not marked ``system`` would never run in CI
    (step 2 runs ``-m system`` only): fail it, so the mark is added."""
    report: pytest.TestReport = yield
    if report.skipped and not item.get_closest_marker("system"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "apt-get" in reason or "Debian" in reason:
            report.outcome = "failed"
            report.longrepr = f"skipped for a Debian package but not marked system: {reason}"
    return report


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
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp("encoders"))
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above every worker's own
    with FileLock(shared / "encoders.lock"):  # the first worker builds it, the others wait and reuse it
        if not (shared / "encoders" / "built").is_file():
            bundles = build(shared / "encoders")
            (shared / "encoders" / "built").touch()
            return bundles
    return bundles_at(shared / "encoders")


@pytest.fixture(scope="session")
def milvus_lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[milvuslite.LiteServer]:
    """One milvus-lite server on a loopback port for the whole session (about 3 s to start), shared by every
    test of the Milvus backend; each pushes its galleries into collections of its own. Skips without the
    milvus extra."""
    reason = milvuslite.missing()
    if reason:
        pytest.skip(reason)
    server = milvuslite.LiteServer(tmp_path_factory.mktemp("milvus") / "data")
    server.start()
    yield server
    server.kill()
