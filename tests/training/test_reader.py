from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from latent_bridge.training.datasets.builders.synthetic import make_dataset, write_modality
from latent_bridge.training.datasets.reader import DatasetError, load_dataset, load_modality, trainable_pairs
from latent_bridge.training.datasets.splits import cv_folds, holdout_split, paired_rows


def _frame(n: int = 4, dim: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "sample": [f"s{i}" for i in range(n)],
                         "embedding": list(np.ones((n, dim), dtype=np.float32))})


def _write(tmp_path: Path, frame: pd.DataFrame, name: str = "text") -> Path:
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path)
    return path


def test_reads_parquet_and_npz_alike(tmp_path: Path) -> None:
    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    a = load_modality(write_modality(tmp_path, "a", ["x", "y", "y", "z"], emb))
    b = load_modality(write_modality(tmp_path, "b", ["x", "y", "y", "z"], emb, fmt="npz"))
    assert a.dim == b.dim == 3
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert list(a.payload.columns) == ["caption"] == list(b.payload.columns)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_frame().drop(columns=["sample"]), "missing column(s) ['sample']"),
        (_frame().assign(id=["r0", "r0", "r1", "r2"]), "duplicate ids"),
        (_frame().assign(embedding=[np.ones(3), np.ones(2), np.ones(3), np.ones(3)]), "ragged embeddings"),
        (_frame().assign(embedding=[np.ones(3), np.array([1.0, np.nan, 0]), np.ones(3), np.ones(3)]),
         "1 non-finite embeddings"),
        (_frame().assign(embedding=[np.ones(3), np.array([np.inf, 0, 0]), np.ones(3), np.ones(3)]),
         "non-finite"),
        (_frame(n=0), "no rows"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, frame: pd.DataFrame, message: str) -> None:
    path = _write(tmp_path, frame)
    with pytest.raises(DatasetError) as info:
        load_modality(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_damaged_file_is_a_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "text.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="cannot be read"):
        load_modality(path)


def test_modality_without_partner_is_named(tmp_path: Path) -> None:
    emb = np.random.default_rng(0).standard_normal((40, 4))
    write_modality(tmp_path, "a", [f"s{i}" for i in range(40)], emb)
    write_modality(tmp_path, "b", [f"s{i}" for i in range(40)], emb)
    write_modality(tmp_path, "lonely", [f"other{i}" for i in range(40)], emb)
    with pytest.raises(DatasetError, match=r"lonely\.parquet: modality 'lonely' has no partner"):
        trainable_pairs(load_dataset(tmp_path), min_shared=10)


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no modality files"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(tmp_path / "nope")


def test_holdout_is_by_sample_disjoint_and_seeded() -> None:
    keys = {f"s{i}" for i in range(1000)}
    usable, test = holdout_split(keys, seed=3, fraction=0.2)
    assert usable | test == keys and not usable & test
    assert 150 < len(test) < 250
    assert (usable, test) == holdout_split(keys, seed=3, fraction=0.2)
    assert test != holdout_split(keys, seed=4, fraction=0.2)[1]
    assert holdout_split(keys, seed=3, fraction=0.0) == (frozenset(keys), frozenset())


def test_folds_partition_the_samples_and_agree_across_edges() -> None:
    keys = frozenset(f"s{i}" for i in range(1000))
    folds = cv_folds(keys, seed=3, k=5)
    assert len(folds) == 5
    assert frozenset().union(*(f.val for f in folds)) == keys
    assert sum(len(f.val) for f in folds) == len(keys)
    for f in folds:
        assert f.train | f.val == keys and not f.train & f.val and 140 < len(f.val) < 260
    # an edge that sees only some keys gets the same folds restricted to them: routes are judged on
    # samples that no hop saw
    some = frozenset(sorted(keys)[:300])
    assert [f.val for f in cv_folds(some, seed=3, k=5)] == [f.val & some for f in folds]
    (single,) = cv_folds(keys, seed=3, k=1, val_fraction=0.2)
    assert 150 < len(single.val) < 250 and single.train == keys - single.val
    (capped,) = cv_folds(keys, seed=3, k=1, val_fraction=0.2, max_val=50)
    assert 25 < len(capped.val) < 80 and capped.val < single.val


def test_paired_rows_join_repeated_samples(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=5)
    a = load_modality(write_modality(tmp_path, "video", ["s0", "s1"], np.zeros((2, 2))))
    b = load_modality(write_modality(tmp_path, "caption", ["s0", "s0", "s0", "s1"], np.zeros((4, 2))))
    ia, ib = paired_rows(a, b, {"s0", "s1"})
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 0), (0, 1), (0, 2), (1, 3)]
    ia, _ = paired_rows(a, b, {"s0", "s1"}, max_per_sample=2)
    assert ia.tolist().count(0) == 2
