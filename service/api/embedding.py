"""A request's query as one float32 matrix: decoded vectors, or raw text/images/sound run through the
modality's encoder (``encoders.py``).

Exactly one input is allowed per request. Raw input must be of the kind the modality's encoder takes
(``"text"`` for a text encoder...); a modality without an encoder says which modalities have one.

At most ``max_concurrent_encodes`` requests run an encoder at once in this process; one more is answered 503
with Retry-After at once (``EncodersBusy``) rather than queued, since a queue of encoder runs only turns into
504s and memory held for callers that have gone. Each run stops at its deadline (``request_timeout``).

With dynamic batching (``encode_batch_size`` > 1, ``service/inputs/batching.py``) a light request (at most
``encode_batch`` items, texts short enough that a full batch padded to them takes no more memory than one
request's ``encode_batch`` longest texts) decodes or tokenizes its input under that cap, then hands the
prepared items to its encoder's batcher and waits, without a slot, for its rows: the batcher runs the queued
items of every request in one model call. Its queue is bounded (``encode_queue`` items; beyond, 503 with
Retry-After) and a job past its deadline is never run. Heavier requests run alone under the cap, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from latent_bridge.service.api.memory import trim_heap
from latent_bridge.service.api.schemas import Encoding, RawInput
from latent_bridge.service.api.vectors import decode
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.errors import EmptyBatch, EncodersBusy, MalformedInput, NoEncoder, WrongInputKind
from latent_bridge.service.galleries.backend import Matrix
from latent_bridge.service.inputs.batching import BatcherClosed, BatchSettings
from latent_bridge.service.inputs.encoders import Encoder
from latent_bridge.service.inputs.rawinput import RawLimits
from latent_bridge.service.settings import Settings

RAW_KINDS = ("text", "image", "audio")
RETRY_AFTER_SECONDS = 1

# One gate per limit, shared by every app of the process: the memory and cores encoders use are the process's.
_gates: dict[int, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


@contextmanager
def encoder_slot(limit: int) -> Iterator[None]:
    """Hold one of ``limit`` encoder slots for the block, or raise ``EncodersBusy`` at once. After the block the
    heap's free pages go back to the OS (about 0.2 ms): each worker thread has its own malloc arena, which
    otherwise keeps the peak of the largest request it ever embedded (a burst of long texts: +700 MB idle)."""
    with _gates_lock:
        gate = _gates.setdefault(limit, threading.BoundedSemaphore(limit))
    if not gate.acquire(blocking=False):
        raise EncodersBusy(limit, RETRY_AFTER_SECONDS)
    try:
        yield
    finally:
        gate.release()
        trim_heap()


def raw_limits(settings: Settings) -> RawLimits:
    """The request's limits; its deadline starts now and lasts ``request_timeout``."""
    return RawLimits(
        settings.max_raw_batch,
        settings.max_media_bytes,
        settings.max_image_pixels,
        settings.max_audio_seconds,
        settings.max_text_chars,
        batch=settings.encode_batch,
        deadline=time.monotonic() + settings.request_timeout,
        timeout=settings.request_timeout,
    )


def batch_settings(settings: Settings, kind: str) -> BatchSettings:
    """How the batcher of an encoder of ``kind`` collects: media batches are held to ``encode_batch`` too."""
    size = settings.encode_batch_size if kind == "text" else min(settings.encode_batch_size, settings.encode_batch)
    return BatchSettings(
        max_items=size,
        wait=settings.encode_batch_wait_ms / 1000,
        max_queued=settings.encode_queue,
        timeout=settings.request_timeout,
    )


def run_encoder(bundle: Bundle, settings: Settings, modality: str, encoder: Encoder, raw: str | list[str]) -> Matrix:
    """The encoder over ``raw``: a light request through its batcher when batching is on, else alone under an
    encoder slot (see the module's docstring)."""
    limits = raw_limits(settings)
    cap = settings.max_concurrent_encodes
    batching = batch_settings(settings, encoder.spec.input)
    count = 1 if isinstance(raw, str) else len(raw)
    batcher = bundle.batchers.get(modality, encoder.run, batching) if count <= limits.batch else None
    if batcher is None:
        with encoder_slot(cap):
            return encoder.embed(raw, limits)
    with encoder_slot(cap):
        with batcher.preparing():
            (batch,) = encoder.prepare(raw, limits)
        if encoder.width(batch) * batching.max_items > limits.batch * encoder.max_width:
            return encoder.run(batch)  # long texts: a full batch of them would outgrow one request's memory
    try:
        return batcher.submit(batch, limits.deadline)
    except BatcherClosed:  # the bundle was replaced meanwhile: run alone, as without batching
        with encoder_slot(cap):
            return encoder.run(batch)


def raw_kind(body: RawInput) -> str | None:
    """The one raw field given, if any."""
    given = [k for k in RAW_KINDS if getattr(body, k) is not None]
    if len(given) > 1:
        raise MalformedInput(f"give one input, not {' and '.join(given)}")
    return given[0] if given else None


def has_raw(body: RawInput) -> bool:
    return any(getattr(body, k) is not None for k in RAW_KINDS)


def embed_raw(bundle: Bundle, settings: Settings, modality: str, body: RawInput) -> Matrix:
    """Embeddings of the raw input in ``body`` by the encoder of ``modality``."""
    bundle.graph.require(modality)
    kind = raw_kind(body)
    if kind is None:
        raise EmptyBatch("no input: give `text`, `image` or `audio`")
    encoder = bundle.encoders.get(modality)
    if encoder is None:
        with_one = sorted(bundle.encoders)
        raise NoEncoder(
            f"modality {modality!r} has no encoder in this bundle, so it takes vectors only; "
            f"modalities with an encoder: {', '.join(with_one) or 'none'}",
            modality=modality,
            encoders=with_one,
        )
    if kind != encoder.spec.input:
        raise WrongInputKind(
            f"modality {modality!r} embeds `{encoder.spec.input}` input, not `{kind}`",
            expected=encoder.spec.input,
            got=kind,
        )
    raw = getattr(body, kind)
    assert raw is not None
    return run_encoder(bundle, settings, modality, encoder, raw)


def query_matrix(
    bundle: Bundle,
    settings: Settings,
    modality: str,
    body: RawInput,
    vectors: list[list[float]] | str | None,
    vector: list[float] | str | None,
    encoding: Encoding,
) -> Matrix:
    """The request's query vectors: embedded raw input, or the decoded ``vector``/``vectors``."""
    if has_raw(body):
        if vectors is not None or vector is not None:
            raise MalformedInput("give either vectors or raw input (text, image, audio), not both")
        return embed_raw(bundle, settings, modality, body)
    spec = bundle.modalities[modality]
    return decode(vectors, vector, encoding, spec.name, spec.dim, settings.max_batch, settings.max_vector_length)
