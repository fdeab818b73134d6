"""Loading a bundle: a good one opens with warmed-up translators; each kind of bad one is refused by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
from bundle_edits import edit_manifest, rehash
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import BundleError, read_manifest
from latent_bridge.service.galleries.table import build_lookup
from latent_bridge.service.galleries.writelog import Record, WriteLog
from testbundles import embeddings


def test_a_good_bundle_loads(chain_bundle: Path, dataset: Path) -> None:
    bundle = load_bundle(chain_bundle)
    assert sorted(bundle.translators) == [("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")]
    assert sorted(bundle.galleries) == ["a", "b", "c"]
    gallery = bundle.galleries["a"]
    assert gallery.size == 300 and gallery.payload.keys() == {"caption"}
    a = embeddings(dataset, "a")
    assert gallery.mean is not None
    np.testing.assert_allclose(gallery.mean, a.mean(axis=0), atol=1e-5)
    assert bundle.graph.best("a", "c").path == ("a", "b", "c")


def test_translators_match_onnxruntime_directly(chain_bundle: Path) -> None:
    bundle = load_bundle(chain_bundle)
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    session = ort.InferenceSession(str(chain_bundle / "translators/a__b.onnx"))
    np.testing.assert_allclose(
        bundle.translators["a", "b"](x), session.run(["output"], {"input": x})[0], rtol=1e-6
    )


def test_stored_items_read_back_exactly(chain_bundle: Path, dataset: Path) -> None:
    """Training writes the raw embedding beside each id, so a query by id is the item itself."""
    gallery = load_bundle(chain_bundle).galleries["b"]
    np.testing.assert_allclose(gallery.vector(7)[0], embeddings(dataset, "b")[7], atol=1e-6)


def test_ivf_galleries_load_and_read_back(ivf_bundle: Path) -> None:
    bundle = load_bundle(ivf_bundle)
    gallery = bundle.galleries["a"]
    assert gallery.spec.index_type == "ivf"
    ((hit,),) = gallery.search(gallery.vector(3), 1)
    assert hit.id == "a-3" and hit.score == pytest.approx(1.0, abs=1e-4)


def _missing_manifest(b: Path) -> None:
    (b / "manifest.json").unlink()


def _bad_json(b: Path) -> None:
    (b / "manifest.json").write_text("{not json")


def _bad_schema(b: Path) -> None:
    edit_manifest(b, lambda m: m["edges"][0].update(kind="magic"))


def _missing_file(b: Path) -> None:
    (b / "translators/b__c.onnx").unlink()


def _wrong_hash(b: Path) -> None:
    with (b / "index/c.arrow").open("ab") as f:
        f.write(b"\0")


def _outside(b: Path) -> None:
    edit_manifest(b, lambda m: m["edges"][0].update(file="../../etc/passwd"))


def _not_onnx(b: Path) -> None:
    (b / "translators/a__b.onnx").write_bytes(b"not a model")
    rehash(b, "translators/a__b.onnx")


def _dims_disagree(b: Path) -> None:
    edit_manifest(b, lambda m: m["modalities"][2].update(dim=32))  # c: the b→c / c→b models say 16


def _index_size(b: Path) -> None:
    table = pa.ipc.open_file(str(b / "index/b.arrow")).read_all().slice(0, 299)
    with pa.ipc.new_file(str(b / "index/b.arrow"), table.schema) as writer:
        writer.write_table(table)
    np.save(b / "index/b.lookup.npy", build_lookup(table.column("id")))
    np.save(b / "index/b.vectors.npy", np.load(b / "index/b.vectors.npy")[:299])
    rehash(b, "index/b.vectors.npy")
    rehash(b, "index/b.arrow")
    rehash(b, "index/b.lookup.npy")


def _vectors_shape(b: Path) -> None:
    np.save(b / "index/a.vectors.npy", np.zeros((300, 8), np.float32))
    rehash(b, "index/a.vectors.npy")


def _write_log_of_another_bundle(b: Path) -> None:
    log = b.with_name(b.name + ".writes") / "a.log"
    log.parent.mkdir()
    WriteLog(log, "elsewhere", "0" * 16).append(Record("delete", ["a-1"]))


def _manifest_size(b: Path) -> None:
    edit_manifest(b, lambda m: m["galleries"][0].update(size=299))


def _index_type(b: Path) -> None:
    edit_manifest(b, lambda m: m["galleries"][0].update(index_type="hnsw"))


def _not_an_index(b: Path) -> None:
    (b / "index/a.faiss").write_bytes(b"\0" * 64)
    rehash(b, "index/a.faiss")


@pytest.mark.parametrize(
    ("damage", "file", "reason"),
    [
        (_missing_manifest, "manifest.json", "missing manifest"),
        (_bad_json, "manifest.json", "not valid JSON"),
        (_bad_schema, "manifest.json", "edges.0.kind"),
        (_missing_file, "translators/b__c.onnx", "missing"),
        (_wrong_hash, "index/c.arrow", "does not match the manifest"),
        (_outside, "etc/passwd", "points outside the bundle"),
        (_not_onnx, "translators/a__b.onnx", "not a loadable ONNX model"),
        (_dims_disagree, "translators/b__c.onnx", "does not match the manifest's b__c"),
        (_index_size, "index/b.faiss", "300 vectors but b.arrow has 299 rows"),
        (_manifest_size, "index/a.arrow", "the manifest says size 299"),
        (_vectors_shape, "index/a.vectors.npy", "expected float32 (300, 16)"),
        (_write_log_of_another_bundle, ".writes/a.log", "written for bundle 'elsewhere'"),
        (_index_type, "index/a.faiss", "the manifest says index_type 'hnsw'"),
        (_not_an_index, "index/a.faiss", "not a readable FAISS index"),
    ],
)
def test_a_bad_bundle_is_refused_naming_file_and_reason(
    chain_bundle: Path,
    bundle_copy: Callable[[Path], Path],
    damage: Callable[[Path], None],
    file: str,
    reason: str,
) -> None:
    bundle = bundle_copy(chain_bundle)
    damage(bundle)
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle)
    message = str(caught.value)
    assert file in message and reason in message
    assert "\n" not in message


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a bundle folder"):
        load_bundle(tmp_path / "nope")


def test_the_fingerprint_covers_the_manifest(chain_bundle: Path, bundle_copy: Callable[[Path], Path]) -> None:
    """Metrics decide routing: a bundle whose manifest alone changed is another bundle."""
    edited = bundle_copy(chain_bundle)
    edit_manifest(edited, lambda m: m["edges"][0]["metrics"].update(cycle_cosine=0.5))
    assert load_bundle(edited).fingerprint != load_bundle(chain_bundle).fingerprint


def test_a_manifest_written_before_pivot_index_types_keeps_its_fingerprint(chain_bundle: Path) -> None:
    """Pivot galleries gained ``index_type`` and ``search``; a manifest without them (as older versions wrote
    it, flat and default) must serialise exactly as written, or its fingerprint, which its run-time write
    log names, would change and the log would refuse it."""
    manifest = read_manifest(chain_bundle)
    assert manifest.pivot_galleries and all(p.index_type == "flat" for p in manifest.pivot_galleries)
    written = json.loads((chain_bundle / "manifest.json").read_text())
    assert all("index_type" not in p and "search" not in p for p in written["pivot_galleries"])
    assert json.loads(manifest.model_dump_json()) == written
    tuned = manifest.pivot_galleries[0].model_copy(update={"index_type": "hnsw"})
    assert tuned.model_dump()["index_type"] == "hnsw"  # kept once it says something
