"""`latent-bridge translate` as a real process: a corpus file translated in batches equals the server's
translation of every row, with the other columns kept in order."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.engine.translate import run_route
from serverprocess import command
from tinybundles import tiny_dataset, train_tiny

pytestmark = pytest.mark.slow  # real processes


@pytest.fixture(scope="module")
def bundle_and_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus")
    data = tiny_dataset(root / "data", {"a": 8, "b": 6, "c": 4}, relation="linear")
    return train_tiny(data, root / "bundle", edges=[("a", "b"), ("b", "c")]), data


def translate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), "translate", *args], capture_output=True, text=True, timeout=300)


def test_a_corpus_is_translated_in_batches(bundle_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, data = bundle_and_data
    corpus, out = data / "a.parquet", tmp_path / "a-as-c.parquet"
    done = translate("--bundle", str(bundle), "--from", "a", "--to", "c", "--in", str(corpus), "--out", str(out),
                     "--batch", "7")
    assert done.returncode == 0, done.stderr
    assert "200 rows along a → b → c" in done.stdout
    assert "200/200" in done.stderr  # the progress bar reached the end
    source, result = pq.read_table(corpus), pq.read_table(out)
    assert result.column_names == source.column_names
    for name in source.column_names:
        if name != "embedding":
            assert result.column(name).to_pylist() == source.column(name).to_pylist()
    x = np.stack(source.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
    served = load_bundle(bundle)
    expected = run_route(served.translators, served.graph.best("a", "c"), x)
    got = np.stack(result.column("embedding").to_numpy(zero_copy_only=False))
    assert got.shape == (200, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert [p.name for p in tmp_path.iterdir()] == ["a-as-c.parquet"]  # no partial file left


def test_bad_requests_say_what_is_wrong(bundle_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, data = bundle_and_data
    out = tmp_path / "out.parquet"
    unknown = translate("--bundle", str(bundle), "--from", "a", "--to", "zz", "--in", str(data / "a.parquet"),
                        "--out", str(out))
    assert unknown.returncode == 2 and "unknown modality 'zz'" in unknown.stderr
    wrong_dim = translate("--bundle", str(bundle), "--from", "a", "--to", "b", "--in", str(data / "c.parquet"),
                          "--out", str(out))
    assert wrong_dim.returncode == 2 and "not all 8-d" in wrong_dim.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
