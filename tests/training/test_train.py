import copy
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from latent_bridge.cli import main
from latent_bridge.service.bundle.manifest import Manifest, read_manifest
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training import export as export_module
from latent_bridge.training.bundling import writer as bundle_module
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset
from latent_bridge.training.datasets.reader import load_dataset
from latent_bridge.training.datasets.splits import holdout_split
from latent_bridge.training.export import ExportError, check_parity, to_onnx
from latent_bridge.training.train import train
from latent_bridge.training.translators import MLPTranslator, SpaceStats, fit_linear


def test_rotation_plant_is_solved_by_procrustes(rotation_bundle: tuple[Path, Path, Manifest]) -> None:
    _, _, manifest = rotation_bundle
    for edge in manifest.edges:
        c = edge.candidates
        assert c["procrustes"].mrr > c["ridge"].mrr, "the plant should favour the orthogonal map"
        assert c["procrustes"].r1 > 10 * c["identity"].r1
        assert edge.kind in ("procrustes", "mlp")  # the MLP starts from the best linear map
        assert edge.metrics.r1 >= c["procrustes"].r1 - 0.05
        assert c["procrustes"].cycle_cosine == pytest.approx(1.0, abs=1e-4)  # orthogonal maps invert exactly


def test_r1_is_near_what_the_plant_allows(rotation_bundle: tuple[Path, Path, Manifest]) -> None:
    """The oracle knows every pair, test rows included: an upper bound on what any linear edge can reach."""
    data_dir, _, manifest = rotation_bundle
    data = load_dataset(data_dir)
    a, b = data["a"], data["b"]
    test = holdout_split(set(a.samples.tolist()), seed=0, fraction=0.2)[1]
    rows = a.rows_of(set(test))
    sa, sb = SpaceStats.fit(a.embeddings), SpaceStats.fit(b.embeddings)
    oracle = fit_linear("procrustes", sa.standardise(a.embeddings), sb.standardise(b.embeddings))
    translated = sa.standardise(a.embeddings[rows]) @ oracle * sb.scale + sb.mean
    oracle_r1 = float((ranks(translated, a.samples[rows], b.embeddings[rows], b.samples[rows]) == 1).mean())
    a_to_b = next(e for e in manifest.edges if e.key == "a__b")
    assert a_to_b.metrics.r1 >= 0.9 * oracle_r1


def test_manifest_and_files_check_out(rotation_bundle: tuple[Path, Path, Manifest]) -> None:
    _, out, manifest = rotation_bundle
    assert read_manifest(out) == manifest
    for edge in manifest.edges:
        assert bundle_module.sha256_bytes((out / edge.file).read_bytes()) == edge.sha256
        assert edge.metrics.n_test > 0 and edge.metrics.n_train > edge.metrics.n_test
    assert {g.modality: g.size for g in manifest.galleries} == {"a": 300, "b": 300}
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_bundle_onnx_reproduces_torch_translation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ONNX file written into the bundle computes the torch module it was exported from, to 1e-5."""
    exported: dict[str, torch.nn.Module] = {}
    original = export_module.check_parity

    def keep(module: torch.nn.Module, data: bytes, in_dim: int, seed: int = 0) -> float:
        exported[bundle_module.sha256_bytes(data)] = copy.deepcopy(module)
        return original(module, data, in_dim, seed)

    monkeypatch.setattr(export_module, "check_parity", keep)
    data = make_dataset(tmp_path / "data", n=120, dims={"a": 8, "b": 6}, relation="nonlinear")
    manifest = train(TrainConfig(data=data, out=tmp_path / "b", kind="mlp", epochs=2, hidden=16, progress=False))
    x = np.random.default_rng(1).standard_normal((33, 8)).astype(np.float32) * 3
    for edge in manifest.edges:
        session = ort.InferenceSession(str(tmp_path / "b" / edge.file), providers=["CPUExecutionProvider"])
        dim = session.get_inputs()[0].shape[1]
        with torch.no_grad():
            expected = exported[edge.sha256].eval()(torch.from_numpy(x[:, :dim])).numpy()
        got = session.run(None, {"input": x[:, :dim]})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
        assert session.get_inputs()[0].shape[0] == "batch"


@pytest.mark.parametrize("batch", [1, 7])
def test_mlp_onnx_parity(batch: int) -> None:
    rng = np.random.default_rng(0)
    stats = SpaceStats(mean=rng.standard_normal(6).astype(np.float32), scale=2.0)
    module = MLPTranslator(rng.standard_normal((6, 4)), stats, SpaceStats(np.zeros(4, np.float32), 0.5), 16, 0.1)
    torch.nn.init.normal_(module.out.weight)
    data = to_onnx(module, 6)
    x = rng.standard_normal((batch, 6)).astype(np.float32)
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_parity_check_catches_a_wrong_file() -> None:
    rng = np.random.default_rng(0)
    stats = SpaceStats(mean=np.zeros(6, np.float32), scale=1.0)
    module = MLPTranslator(rng.standard_normal((6, 6)), stats, stats, 8, 0.0)
    data = to_onnx(module, 6)
    with torch.no_grad():
        module.base.weight.add_(0.1)
    with pytest.raises(ExportError, match="differs from torch"):
        check_parity(module, data, 6)


def test_crash_while_writing_leaves_no_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_dataset(tmp_path / "data", n=120, dims={"a": 8, "b": 8})
    out = tmp_path / "models" / "crashed"

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bundle_module, "write_manifest", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(TrainConfig(data=data, out=out, kind="ridge", progress=False))
    assert list((tmp_path / "models").iterdir()) == []


def test_existing_bundle_is_never_overwritten(rotation_bundle: tuple[Path, Path, Manifest]) -> None:
    data, out, _ = rotation_bundle
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(FileExistsError, match="immutable"):
        train(TrainConfig(data=data, out=out, kind="ridge", progress=False))
    assert (out / "manifest.json").read_bytes() == before


def test_identity_refused_when_dimensions_differ(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=100, dims={"a": 8, "b": 4}, relation="linear")
    with pytest.raises(ValueError, match="dimensions differ"):
        train(TrainConfig(data=data, out=tmp_path / "b", kind="identity", progress=False))


def test_training_is_deterministic(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=150, dims={"a": 8, "b": 6}, relation="nonlinear")
    shas = []
    for name in ("one", "two"):
        manifest = train(TrainConfig(data=data, out=tmp_path / name, kind="mlp", epochs=3, hidden=16, progress=False))
        shas.append([e.sha256 for e in manifest.edges])
    assert shas[0] == shas[1]


def test_cli_trains_named_edges_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "data", n=120, dims={"a": 8, "b": 8, "c": 8}, relation="linear")
    main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--kind", "ridge", "--edges", "a:b,b:c",
          "--quiet"])
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert sorted(e["source"] + e["target"] for e in manifest["edges"]) == ["ab", "ba", "bc", "cb"]
    assert "R@1" in capsys.readouterr().out


def test_cli_reports_unknown_modality_and_too_few_samples(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=20, dims={"a": 4, "b": 4})
    with pytest.raises(SystemExit, match="unknown modality 'z'"):
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--edges", "a:z", "--quiet"])
    with pytest.raises(SystemExit, match="only 20 shared samples, at least 32 needed"):
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--edges", "a:b", "--quiet"])


@pytest.mark.slow
def test_nonlinear_plant_needs_the_mlp(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=1500, dims={"a": 16, "b": 16}, relation="nonlinear", noise=0.1)
    manifest = train(TrainConfig(data=data, out=tmp_path / "b", epochs=60, progress=False))
    a_to_b = next(e for e in manifest.edges if e.key == "a__b")
    assert a_to_b.kind == "mlp"
    assert a_to_b.metrics.r1 > a_to_b.candidates["ridge"].r1 + 0.03


def test_eval_reproduces_the_held_out_metrics_with_the_bundles_seed(tmp_path: Path) -> None:
    """Eval, run through the server's translator code on the split of the seed in the manifest, gets the
    metrics training wrote: the same R@1 and the same cycle cosine (centred by the training mean)."""
    data = make_dataset(tmp_path / "data", n=200, dims={"a": 8, "b": 6, "c": 4}, relation="linear", noise=0.2)
    bundle = tmp_path / "bundle"
    manifest = train(TrainConfig(data=data, out=bundle, kind="ridge", edges=[("a", "b"), ("b", "c")], seed=7,
                                 holdout=0.2, progress=False))
    main(["eval", "--bundle", str(bundle), "--data", str(data), "--report", str(tmp_path / "report"),
          "--curve-seeds", "0"])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["seed"] == 7
    routes = {" ".join(r["route"]): r for r in report["routes"]}
    assert "a b c" in routes and "c b a" in routes and "a c" not in routes
    for edge in manifest.edges:
        measured = routes[f"{edge.source} {edge.target}"]
        assert measured["r1"] == pytest.approx(edge.metrics.r1, abs=1e-6)
        assert measured["mrr"] == pytest.approx(edge.metrics.mrr, abs=1e-6)
        assert measured["cycle_cosine"] == pytest.approx(edge.metrics.cycle_cosine, abs=1e-4)
    for name in ("report.md", "recall_at_k.png", "gap_a__b.png"):
        assert (tmp_path / "report" / name).stat().st_size > 100
    main(["eval", "--bundle", str(bundle), "--data", str(data), "--report", str(tmp_path / "r0"), "--seed", "0",
          "--curve-seeds", "0"])
    assert json.loads((tmp_path / "r0" / "report.json").read_text())["seed"] == 0
