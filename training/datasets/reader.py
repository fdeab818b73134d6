"""Read an embeddings dataset (docs/architecture.md, "Dataset"): one Parquet or NPZ file per modality.

Each file has `id` (unique row id), `sample` (pairing key; rows of two modalities sharing a `sample`
are a positive pair, and a key may repeat), `embedding` (fixed-dim floats) and optional payload columns.
Every problem is reported as a ``DatasetError`` that names the file, never as a numpy traceback.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SUFFIXES = (".parquet", ".npz")
REQUIRED = ("id", "sample", "embedding")
MAX_KEY_CHARS = 1024  # ids and samples are returned by every search and named in errors: keep them short
MODALITY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # the manifest's rule, checked before any training


class DatasetError(ValueError):
    """A dataset that cannot be trained on; the message names the file and the problem."""


@dataclass(frozen=True)
class ModalityData:
    """All rows of one modality: ids, pairing keys, float32 embeddings and payload columns."""

    name: str
    path: Path
    ids: np.ndarray
    samples: np.ndarray
    embeddings: np.ndarray
    payload: pd.DataFrame = field(repr=False)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, samples: set[str]) -> np.ndarray:
        """Indices of the rows whose pairing key is in ``samples``."""
        return np.flatnonzero(np.fromiter((s in samples for s in self.samples), dtype=bool, count=len(self.samples)))


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        with np.load(path, allow_pickle=False) as npz:
            if "embedding" not in npz.files:
                raise DatasetError(f"{path}: missing column 'embedding' (found {sorted(npz.files)})")
            columns: dict[str, object] = {k: list(npz[k]) if npz[k].ndim > 1 else npz[k] for k in npz.files}
            return pd.DataFrame(columns)
    except DatasetError:
        raise
    except Exception as exc:  # pyarrow/numpy raise many types for a damaged file
        raise DatasetError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _embedding_matrix(path: Path, column: pd.Series) -> np.ndarray:
    lengths = {len(v) if hasattr(v, "__len__") else -1 for v in column}
    if -1 in lengths:
        raise DatasetError(f"{path}: column 'embedding' must hold one vector per row")
    if len(lengths) != 1:
        raise DatasetError(f"{path}: ragged embeddings, row lengths {sorted(lengths)[:5]}")
    try:
        matrix = np.asarray(np.stack(list(column)), dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: embeddings are not numeric ({exc})") from exc
    if matrix.shape[1] == 0:
        raise DatasetError(f"{path}: embeddings have dimension 0")
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise DatasetError(f"{path}: {int(bad.sum())} non-finite embeddings (NaN or Inf), first at row {bad.argmax()}")
    return matrix


def _check_keys(path: Path, column: str, values: pd.Series) -> None:
    """Keys must be present and short: a null would pair as the string 'None', a long one bloats every answer."""
    missing = values.isna().to_numpy()
    if missing.any():
        first = int(missing.argmax())
        raise DatasetError(f"{path}: {int(missing.sum())} empty {column!r} values (null), first at row {first}")
    lengths = values.astype(str).str.len().to_numpy()
    if (lengths > MAX_KEY_CHARS).any():
        raise DatasetError(
            f"{path}: {column!r} values must be at most {MAX_KEY_CHARS} characters; "
            f"row {int((lengths > MAX_KEY_CHARS).argmax())} has {int(lengths.max())}"
        )


def load_modality(path: Path) -> ModalityData:
    """Load and check one modality file; the modality is named after the file stem."""
    path = Path(path)
    table = _read_table(path)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing} (found {list(table.columns)})")
    if len(table) == 0:
        raise DatasetError(f"{path}: no rows")
    if not MODALITY_NAME.match(path.stem):
        raise DatasetError(
            f"{path}: the modality is named after the file; {path.stem!r} must match {MODALITY_NAME.pattern}"
        )
    for column in ("id", "sample"):
        _check_keys(path, column, table[column])
    ids = table["id"].astype(str).to_numpy(dtype=object)
    duplicated = pd.Series(ids).duplicated()
    if duplicated.any():
        raise DatasetError(f"{path}: duplicate ids, e.g. {ids[duplicated.to_numpy()][:3].tolist()}")
    payload = table.drop(columns=list(REQUIRED)).reset_index(drop=True)
    return ModalityData(
        name=path.stem,
        path=path,
        ids=ids,
        samples=table["sample"].astype(str).to_numpy(dtype=object),
        embeddings=_embedding_matrix(path, table["embedding"]),
        payload=payload,
    )


def modality_files(data_dir: Path) -> dict[str, Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: not a folder")
    files = {p.stem: p for p in sorted(data_dir.iterdir()) if p.suffix in SUFFIXES}
    if not files:
        raise DatasetError(f"{data_dir}: no modality files (*.parquet or *.npz)")
    return files


def load_dataset(data_dir: Path, modalities: list[str] | None = None) -> dict[str, ModalityData]:
    """Load every modality file of a folder (or the named ones)."""
    files = modality_files(data_dir)
    if modalities is not None:
        unknown = sorted(set(modalities) - set(files))
        if unknown:
            raise DatasetError(f"{data_dir}: no file for modality {unknown} (found {sorted(files)})")
        files = {m: files[m] for m in modalities}
    return {name: load_modality(path) for name, path in files.items()}


def shared_samples(a: ModalityData, b: ModalityData) -> set[str]:
    return set(a.samples.tolist()) & set(b.samples.tolist())


def trainable_pairs(data: dict[str, ModalityData], min_shared: int) -> list[tuple[str, str]]:
    """Unordered modality pairs that share at least ``min_shared`` samples; every modality needs a partner."""
    names = sorted(data)
    pairs = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if len(shared_samples(data[a], data[b])) >= min_shared
    ]
    linked = {m for pair in pairs for m in pair}
    for name in names:
        if name not in linked:
            counts = {o: len(shared_samples(data[name], data[o])) for o in names if o != name}
            raise DatasetError(
                f"{data[name].path}: modality {name!r} has no partner with at least {min_shared} shared "
                f"samples (shared: {counts or 'no other modality'})"
            )
    return pairs


def fingerprint(data: dict[str, ModalityData]) -> str:
    """sha256 over the dataset files, in name order."""
    digest = hashlib.sha256()
    for name in sorted(data):
        digest.update(name.encode())
        digest.update(data[name].path.read_bytes())
    return digest.hexdigest()
