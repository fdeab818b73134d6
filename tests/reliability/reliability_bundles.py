"""Helpers of the reliability tests: settings with every limit small enough to test, bundle training,
and the five ways to corrupt a bundle (each with the file its refusal must name and the reason).

Not ``conftest.py``: tests/service has one too, and ``from conftest import`` would find either.
"""

from __future__ import annotations

from pathlib import Path

from bundle_edits import edit_manifest, rehash
from latent_bridge.service.settings import Settings

DIM = 8
API_KEY = "reliability-test-key-0123456789"
ADMIN_KEY = "reliability-admin-key-9876543210"
KEYS = {"api_key": API_KEY, "admin_key": ADMIN_KEY}
LIMITS: dict[str, object] = {
    "max_batch": 32,
    "max_k": 20,
    "max_vector_length": 64,
    "max_body_bytes": 64 * 1024,
    "request_timeout": 5.0,
}


def train_bundle(root: Path, name: str, seed: int) -> Path:
    from latent_bridge.training.config import TrainConfig  # imported late: see tests/service/testbundles.py
    from latent_bridge.training.datasets.synthetic import make_dataset
    from latent_bridge.training.train import train

    data = make_dataset(root / f"data-{name}", n=200, dims={"a": DIM, "b": DIM}, noise=0.1, seed=seed)
    train(TrainConfig(data=data, out=root / name, kind="ridge", progress=False, seed=seed))
    return root / name


def settings_for(bundle: Path | None, **overrides: object) -> Settings:
    values: dict[str, object] = {"bundle": bundle, "api_key": None, "admin_key": None, **LIMITS}
    return Settings(**(values | overrides))  # type: ignore[arg-type]


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
    (b / "index/a.parquet").unlink()


# (damage, file the refusal must name, words of the reason)
CORRUPTIONS = {
    "truncated-onnx": (_truncated_onnx, "translators/a__b.onnx", "not a loadable ONNX model"),
    "sha256-mismatch": (_sha256_mismatch, "translators/b__a.onnx", "does not match the manifest"),
    "unknown-schema-version": (_unknown_schema_version, "manifest.json", "unknown schema_version 99"),
    "damaged-faiss-index": (_damaged_index, "index/b.faiss", "not a readable FAISS index"),
    "missing-file": (_missing_file, "index/a.parquet", "missing"),
}
