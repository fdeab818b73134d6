"""Dynamic batching of encoder calls (service/inputs/batching.py): concurrent raw queries of one modality run
as one model call, with the same embeddings as one at a time; the queue is bounded (503 beyond it); a job past
its deadline is never run; and the batcher threads stop with their bundle (app shutdown, reload)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from encoder_bundle import BARK, DOG_PNG, STAMPS, EncoderBundles
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.embedding import batch_settings, raw_limits
from latent_bridge.service.bundle.loader import Bundle, load_bundle
from latent_bridge.service.errors import EncodersBusy, RequestTimeout
from latent_bridge.service.galleries.backend import Matrix
from latent_bridge.service.inputs.batching import Batcher, BatcherClosed, BatchSettings
from latent_bridge.service.settings import Settings
from sounds import wav
from testsettings import ADMIN_KEY

CAPTIONS = [
    "a dog",
    "a red fire truck with a long ladder and flashing lights",
    "cat",
    "a small house with a chimney",
    "the quick brown fox jumps over the lazy dog",
    "a guitar",
    "an old steam locomotive crossing a stone bridge over a river",
    "sun",
]
TOLERANCE = 1e-5


# --- the batcher alone: deterministic, no model -----------------------------------------------------


class Gate:
    """A fake model: each call records its items, and the first call waits until ``open``."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def run(self, items: list[int]) -> Matrix:
        self.calls.append(list(items))
        self.started.set()
        self.release.wait(10)
        return np.asarray([[float(i), float(i) * 2] for i in items], np.float32)


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.release.set()


def test_queued_jobs_run_as_one_call_and_each_gets_its_rows(gate: Gate) -> None:
    batcher: Batcher[int] = Batcher("fake", gate.run, BatchSettings(max_items=16, wait=0.0, max_queued=64))
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.submit, [0], None)
        assert gate.started.wait(5)  # the worker is busy with job 0: the next ones queue up
        later = [pool.submit(batcher.submit, [i, 100 + i], None) for i in range(1, 7)]
        wait_for(lambda: batcher.queued == 12)
        gate.release.set()
        assert first.result(5).tolist() == [[0.0, 0.0]]
        for i, future in enumerate(later, start=1):
            assert future.result(5).tolist() == [[i, 2 * i], [100 + i, 200 + 2 * i]]
    assert len(gate.calls) == 2 and sorted(gate.calls[1]) == sorted([*range(1, 7), *range(101, 107)])
    assert (batcher.calls, batcher.items, batcher.jobs) == (2, 13, 7)
    batcher.close()
    assert not batcher.alive


def test_a_batch_holds_at_most_max_items(gate: Gate) -> None:
    batcher: Batcher[int] = Batcher("fake", gate.run, BatchSettings(max_items=4, wait=0.0, max_queued=64))
    with ThreadPoolExecutor(8) as pool:
        pool.submit(batcher.submit, [0], None)
        assert gate.started.wait(5)
        futures = [pool.submit(batcher.submit, [i, i], None) for i in range(1, 6)]
        wait_for(lambda: batcher.queued == 10)
        gate.release.set()
        for future in futures:
            future.result(5)
    assert max(len(c) for c in gate.calls) <= 4 and len(gate.calls) == 4  # [0], then 2 + 2 + 1 jobs
    batcher.close()


def test_a_full_queue_is_refused_at_once(gate: Gate) -> None:
    batcher: Batcher[int] = Batcher("fake", gate.run, BatchSettings(max_items=16, wait=0.0, max_queued=2))
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(batcher.submit, [0], None)
        assert gate.started.wait(5)
        queued = pool.submit(batcher.submit, [1, 2], None)
        wait_for(lambda: batcher.queued == 2)
        started = time.monotonic()
        with pytest.raises(EncodersBusy) as busy:
            batcher.submit([3], None)
        assert time.monotonic() - started < 0.5 and busy.value.status == 503
        assert busy.value.extra["retry_after"] == 1
        gate.release.set()
        running.result(5)
        queued.result(5)
    assert batcher.submit([4], None).tolist() == [[4.0, 8.0]]  # room again
    batcher.close()


def test_a_job_past_its_deadline_is_never_run(gate: Gate) -> None:
    batcher: Batcher[int] = Batcher("fake", gate.run, BatchSettings(max_items=16, wait=0.0, timeout=0.05))
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(batcher.submit, [0], None)
        assert gate.started.wait(5)
        with pytest.raises(RequestTimeout):
            batcher.submit([7], time.monotonic() + 0.05)
        gate.release.set()
        running.result(5)
    batcher.close()
    assert all(7 not in call for call in gate.calls)


def test_an_encoder_error_reaches_every_caller_of_the_batch_and_the_worker_goes_on() -> None:
    def broken(items: list[int]) -> Matrix:
        if -1 in items:
            raise ValueError("bad item")
        return np.ones((len(items), 2), np.float32)

    batcher: Batcher[int] = Batcher("fake", broken, BatchSettings(max_items=4))
    with pytest.raises(ValueError, match="bad item"):
        batcher.submit([-1], None)
    assert batcher.submit([1], None).shape == (1, 2)
    batcher.close()


def test_close_runs_what_is_queued_then_refuses(gate: Gate) -> None:
    batcher: Batcher[int] = Batcher("fake", gate.run, BatchSettings(max_items=16))
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(batcher.submit, [0], None)
        assert gate.started.wait(5)
        queued = pool.submit(batcher.submit, [5], None)
        wait_for(lambda: batcher.queued == 1)
        closing = pool.submit(batcher.close)
        wait_for(lambda: batcher.closed)
        with pytest.raises(BatcherClosed):
            batcher.submit([6], None)
        gate.release.set()
        closing.result(5)
        assert queued.result(5).tolist() == [[5.0, 10.0]] and running.result(5).shape == (1, 2)
    assert not batcher.alive


# --- through the server, with the demo's real encoders -----------------------------------------------

@pytest.fixture
def fresh(encoder_bundles: EncoderBundles) -> Iterator[Bundle]:
    """A bundle of its own per test: closing one (app shutdown) ends batching on it for good."""
    bundle = load_bundle(encoder_bundles.with_encoders)
    yield bundle
    bundle.close()


def client_for(bundle: Bundle, **settings: object) -> TestClient:
    values: dict[str, object] = {"access_log": False, "encode_batch_size": 16, "encode_batch_wait_ms": 5.0}
    return TestClient(create_app(Settings(**(values | settings)), bundle=bundle))  # type: ignore[arg-type]


def slowed(bundle: Bundle, modality: str, settings: Settings, seconds: float = 0.05) -> Batcher[Any]:
    """Make the modality's batcher now, around a model call slowed by ``seconds``: concurrent requests then
    surely queue up behind a running call, so batches form whatever the machine's speed."""
    encoder = bundle.encoders[modality]

    def run(items: list[Any]) -> Matrix:
        time.sleep(seconds)
        return encoder.run(items)

    batcher = bundle.batchers.get(modality, run, batch_settings(settings, encoder.spec.input))
    assert batcher is not None
    return batcher


def embed(client: TestClient, modality: str, kind: str, value: str | list[str]) -> np.ndarray:
    response = client.post("/embed", json={"modality": modality, kind: value})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["vectors"], np.float32)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def one_at_a_time(bundle: Bundle, modality: str, kind: str, values: list[Any]) -> list[np.ndarray]:
    """Each value embedded alone by the encoder itself, no batcher: the reference."""
    limits = raw_limits(Settings())
    return [bundle.encoders[modality].embed(v, limits) for v in values]


@pytest.mark.slow
@pytest.mark.encoders
@pytest.mark.parametrize(
    ("modality", "kind", "values"),
    [
        ("text", "text", [*CAPTIONS, CAPTIONS[:3], CAPTIONS[3:7]]),
        ("image", "image", "images"),
        ("audio", "audio", "sounds"),
    ],
)
def test_concurrent_requests_get_the_embeddings_of_one_at_a_time(
    fresh: Bundle, modality: str, kind: str, values: Any
) -> None:
    if values == "images":
        pngs = [DOG_PNG, *sorted((STAMPS / "animals").rglob("*.png"))[:5]]
        values = [b64(p) for p in pngs] + [[b64(p) for p in pngs[:3]]]
    elif values == "sounds":
        values = [b64(BARK), base64.b64encode(wav(1.0, 16_000)).decode(), base64.b64encode(wav(0.5, 8000)).decode()]
    expected = one_at_a_time(fresh, modality, kind, values)
    settings = Settings(encode_batch_size=16)
    batcher = slowed(fresh, modality, settings)
    # Every request gets a decode slot: this test is about batches forming, not the cap's 503 (whose test is
    # tests/reliability/test_raw_input_attacks.py); on a loaded 2-core machine decoding 7 PNGs outlasts 4 slots.
    with client_for(fresh, max_concurrent_encodes=len(values)) as client, ThreadPoolExecutor(len(values)) as pool:
        got = list(pool.map(lambda v: embed(client, modality, kind, v), values))
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape and np.abs(g - e).max() <= TOLERANCE
    requests = len(values)
    assert batcher.jobs >= requests and batcher.calls < requests  # batches formed
    assert not batcher.alive  # stopped with the app


@pytest.mark.slow
@pytest.mark.encoders
def test_heavy_requests_run_alone_as_before(fresh: Bundle) -> None:
    """More items than ``encode_batch``, or texts long enough that a full batch padded to them would take more
    memory than one request may: run by the caller under its encoder slot, never batched."""
    long_text = " ".join(["word"] * 200)
    many = CAPTIONS[:6]
    expected = one_at_a_time(fresh, "text", "text", [long_text, many])
    with client_for(fresh) as client:
        embed(client, "text", "text", "a dog")
        (batcher,) = fresh.batchers.made.values()
        got = [embed(client, "text", "text", long_text), embed(client, "text", "text", many)]
        assert (batcher.calls, batcher.jobs) == (1, 1)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape and np.abs(g - e).max() <= TOLERANCE


@pytest.mark.slow
@pytest.mark.encoders
def test_retrieve_with_raw_text_under_concurrency_answers_as_alone(fresh: Bundle) -> None:
    def retrieve(client: TestClient, caption: str) -> dict[str, Any]:
        response = client.post("/retrieve", json={"from": "text", "to": "image", "text": caption, "k": 5})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    batcher = slowed(fresh, "text", Settings(encode_batch_size=16))
    with client_for(fresh, max_concurrent_encodes=8) as client, ThreadPoolExecutor(8) as pool:
        alone = [retrieve(client, c) for c in CAPTIONS]
        assert batcher.calls == len(CAPTIONS)
        together = list(pool.map(lambda c: retrieve(client, c), CAPTIONS))
    assert batcher.calls < 2 * len(CAPTIONS)
    for a, t in zip(alone, together, strict=True):
        assert [h["id"] for h in a["results"][0]["hits"]] == [h["id"] for h in t["results"][0]["hits"]]
        assert np.allclose([h["score"] for h in a["results"][0]["hits"]],
                           [h["score"] for h in t["results"][0]["hits"]], atol=TOLERANCE)


@pytest.mark.slow
@pytest.mark.encoders
def test_a_full_queue_answers_503_with_retry_after(fresh: Bundle) -> None:
    settings = Settings(encode_batch_size=16, encode_queue=1)
    gate = threading.Event()
    encoder = fresh.encoders["text"]

    inside = threading.Event()

    def held(items: list[Any]) -> Matrix:
        inside.set()
        gate.wait(10)
        return encoder.run(items)

    batcher = fresh.batchers.get("text", held, batch_settings(settings, "text"))
    assert batcher is not None
    with client_for(fresh, encode_queue=1) as client, ThreadPoolExecutor(2) as pool:
        try:
            running = pool.submit(embed, client, "text", "text", "a dog")
            assert inside.wait(10)  # the first request is inside the model call, holding the worker
            queued = pool.submit(embed, client, "text", "text", "a cat")
            wait_for(lambda: batcher.queued == 1)
            refused = client.post("/embed", json={"modality": "text", "text": "a bird"})
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["type"].endswith("encoders-busy")
        finally:
            gate.set()
        assert running.result(10).shape == (1, encoder.spec.dim)
        assert queued.result(10).shape == (1, encoder.spec.dim)


@pytest.mark.slow
@pytest.mark.encoders
def test_the_batcher_thread_stops_with_the_bundle_and_a_closed_bundle_runs_unbatched(fresh: Bundle) -> None:
    with client_for(fresh) as client:
        embed(client, "text", "text", "a dog")
        (batcher,) = fresh.batchers.made.values()
        assert batcher.alive
    assert not batcher.alive  # the app's shutdown closed the bundle
    with client_for(fresh) as client:  # requests still holding a replaced bundle: the encoder runs alone
        assert embed(client, "text", "text", "a dog").shape == (1, fresh.encoders["text"].spec.dim)
    assert list(fresh.batchers.made.values()) == [batcher] and batcher.calls == 1


@pytest.mark.slow
@pytest.mark.encoders
def test_reload_stops_the_old_bundles_batchers(encoder_bundles: EncoderBundles, fresh: Bundle) -> None:
    path = encoder_bundles.with_encoders
    app = create_app(Settings(access_log=False, bundle=path, admin_key=ADMIN_KEY, encode_batch_size=16),
                     bundle=fresh)
    with TestClient(app) as client:
        embed(client, "text", "text", "a dog")
        (old,) = fresh.batchers.made.values()
        response = client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
        assert response.status_code == 200, response.text
        assert not old.alive
        new_bundle: Bundle = app.state.bundle
        assert new_bundle is not fresh
        embed(client, "text", "text", "a dog")
        (new,) = new_bundle.batchers.made.values()
        assert new.alive
    assert not new.alive
    threads = [t.name for t in threading.enumerate() if t.name.startswith("encoder-batcher-")]
    assert threads == []
