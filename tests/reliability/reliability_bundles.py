"""Helpers of the reliability tests: their bundles' shape and the five ways to corrupt a bundle (each with
the file its refusal must name and the reason). Settings and training are shared: tests/support.

Not ``conftest.py``: tests/service has one too, and ``from conftest import`` would find either.
"""

from __future__ import annotations

from pathlib import Path

from bundle_edits import edit_manifest, rehash
from tinybundles import tiny_dataset, train_tiny

DIM = 8


def train_bundle(root: Path, name: str, seed: int) -> Path:
    """Modalities a, b (8-d), edges a↔b (ridge) and both galleries, trained on the dataset of ``seed``."""
    data = tiny_dataset(root / f"data-{name}", {"a": DIM, "b": DIM}, seed=seed)
    return train_tiny(data, root / name, seed=seed)


def _truncated_onnx(b: Path) -> None:
    path = b / "translators/a__b.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    rehash(b, "translators/a__b.onnx")


def _sha256_mismatch(b: Path) -> None:
    with (b / "translators/b__a.onnx").open("ab") as f:
        f.write(b"\0")


def _unknown_schema_version(b: Path) -> None:
    edit_manifest(b, lambda m: m.update(schema_version=99))


def _damaged_index(b: Path) -> None:
    path = b / "index/b.faiss"
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 3]))
    rehash(b, "index/b.faiss")


def _missing_file(b: Path) -> None:
    (b / "index/a.arrow").unlink()


# (damage, file the refusal must name, words of the reason)
CORRUPTIONS = {
    "truncated-onnx": (_truncated_onnx, "translators/a__b.onnx", "not a loadable ONNX model"),
    "sha256-mismatch": (_sha256_mismatch, "translators/b__a.onnx", "does not match the manifest"),
    "unknown-schema-version": (_unknown_schema_version, "manifest.json", "unknown schema_version 99"),
    "damaged-faiss-index": (_damaged_index, "index/b.faiss", "not a readable FAISS index"),
    "missing-file": (_missing_file, "index/a.arrow", "missing"),
}
