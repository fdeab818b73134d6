"""The domain errors, free of any web framework: the engine, the galleries, the bundle loader, training and
the CLI raise and catch them.

Every bad input raises a ``ServiceError`` subclass that knows the status it answers with over HTTP and
carries the facts a client needs to fix the request (the known modalities, the expected dimension, the
limit, ...). ``service/api/problems.py`` renders them as problem+json; the CLI prints their one line.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base of the domain errors; ``extra`` becomes problem members beside type/title/status/detail."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


MAX_ECHO = 80  # characters of a caller's value quoted back in an error


def echo(value: str) -> str:
    """A caller's value as an error quotes it: repr'd, and cut short when long (never echo megabytes)."""
    if len(value) <= MAX_ECHO:
        return repr(value)
    return f"{value[:MAX_ECHO]!r}… ({len(value)} characters)"


class UnknownModality(ServiceError):
    status, slug, title = 404, "unknown-modality", "Unknown modality"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown modality {echo(name)}; known modalities: {', '.join(known)}", known=known)


class UnknownItem(ServiceError):
    status, slug, title = 404, "unknown-item", "Unknown item"


class NoGallery(ServiceError):
    status, slug, title = 404, "no-gallery", "No gallery for this modality"


class DimensionMismatch(ServiceError):
    status, slug, title = 422, "dimension-mismatch", "Wrong vector dimension"

    def __init__(
        self, modality: str, expected: int, got: int, detail: str | None = None, **extra: Any
    ) -> None:
        where = f" (row {extra['row']})" if "row" in extra else ""
        super().__init__(
            detail or f"vectors of modality {modality!r} have {expected} dimensions, got {got}{where}",
            expected=expected,
            got=got,
            **extra,
        )


class NonFiniteInput(ServiceError):
    status, slug, title = 422, "non-finite-input", "Vectors contain NaN or infinity"


class NonFiniteOutput(ServiceError):
    status, slug, title = 422, "non-finite-output", "Translation overflowed"


class EmptyBatch(ServiceError):
    status, slug, title = 422, "empty-batch", "No vectors given"


class BatchTooLarge(ServiceError):
    status, slug, title = 413, "batch-too-large", "Too many vectors in one request"

    def __init__(self, got: int, limit: int) -> None:
        super().__init__(f"{got} vectors in one request; the limit is {limit}", limit=limit, got=got)


class KOutOfRange(ServiceError):
    status, slug, title = 422, "k-out-of-range", "k out of range"

    def __init__(self, k: int, limit: int) -> None:
        super().__init__(f"k must be between 1 and {limit}, got {k}", minimum=1, limit=limit, got=k)


class EffortOutOfRange(ServiceError):
    status, slug, title = 422, "effort-out-of-range", "Search effort out of range"


class UnknownPayloadColumn(ServiceError):
    status, slug, title = 422, "unknown-payload-column", "Unknown payload column"


class InvalidWrite(ServiceError):
    status, slug, title = 422, "invalid-write", "Gallery write refused"


class InvalidId(ServiceError):
    status, slug, title = 422, "invalid-id", "Item id refused"


class InvalidFilter(ServiceError):
    status, slug, title = 422, "invalid-filter", "Payload filter refused"


class WritesUnavailable(ServiceError):
    status, slug, title = 503, "writes-unavailable", "This server takes no gallery writes"


class GalleryUnavailable(ServiceError):
    status, slug, title = 503, "gallery-unavailable", "The gallery's store is unavailable"


class WriteFailed(ServiceError):
    status, slug, title = 503, "write-failed", "The write could not be made durable"


class MalformedVectors(ServiceError):
    status, slug, title = 422, "malformed-vectors", "Vectors cannot be decoded"


class InvalidPath(ServiceError):
    status, slug, title = 422, "invalid-path", "Pinned path does not fit the request"


class MissingEdge(ServiceError):
    status, slug, title = 409, "missing-edge", "Pinned path uses an edge the bundle lacks"


class NoRoute(ServiceError):
    status, slug, title = 409, "no-route", "No route between the modalities"


class UnsupportedMediaType(ServiceError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported content type"


class VectorTooLong(ServiceError):
    status, slug, title = 413, "vector-too-long", "An input vector is too long"

    def __init__(self, got: int, limit: int, row: int) -> None:
        super().__init__(
            f"input vector {row} has {got} values; the limit is {limit}", limit=limit, got=got, row=row
        )


class NoEncoder(ServiceError):
    status, slug, title = 422, "no-encoder", "No encoder for this modality"


class WrongInputKind(ServiceError):
    status, slug, title = 422, "wrong-input-kind", "This modality takes another kind of raw input"


class MalformedInput(ServiceError):
    status, slug, title = 422, "malformed-input", "Raw input cannot be decoded"


class UnreadableMedia(ServiceError):
    status, slug, title = 422, "unreadable-media", "Image or audio file cannot be read"


class UnsupportedSampleRate(ServiceError):
    status, slug, title = 422, "unsupported-sample-rate", "Audio sample rate cannot be resampled"


class InputTooLarge(ServiceError):
    status, slug, title = 413, "input-too-large", "A raw input is too large"


class AudioTooLong(ServiceError):
    status, slug, title = 413, "audio-too-long", "Audio is too long"


class NoMedia(ServiceError):
    status, slug, title = 404, "no-media", "No media for this item"


class BodyTooLarge(ServiceError):
    status, slug, title = 413, "body-too-large", "Request body too large"

    def __init__(self, limit: int, got: int | None = None) -> None:
        size = f"{got} bytes" if got is not None else "more bytes than allowed"
        super().__init__(
            f"the request body has {size}; the limit is {limit} bytes (send large float batches as base64)",
            limit=limit,
            **({"got": got} if got is not None else {}),
        )


class TooManyValues(ServiceError):
    status, slug, title = 413, "too-many-values", "Too many JSON values in the body"

    def __init__(self, limit: int, got: int) -> None:
        super().__init__(
            f"the JSON body holds up to {got} values; the limit is {limit} (send large float batches as "
            "base64, or split them)",
            limit=limit,
            got=got,
        )


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "API key required"


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Wrong API key"


class BundleRefused(ServiceError):
    status, slug, title = 422, "bundle-refused", "Bundle refused"


class RequestTimeout(ServiceError):
    status, slug, title = 504, "request-timeout", "Request took too long"

    def __init__(self, limit: float) -> None:
        super().__init__(f"the request did not finish within {limit:g} s", limit=limit)


class NotReady(ServiceError):
    status, slug, title = 503, "not-ready", "No bundle loaded"


class UnsupportedFormat(ServiceError):
    status, slug, title = 415, "unsupported-format", "Image or audio format not accepted"


class EncodersBusy(ServiceError):
    """Every encoder slot is taken (``max_concurrent_encodes``): retry after ``retry_after`` seconds."""

    status, slug, title = 503, "encoders-busy", "Every encoder is busy"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"{limit} raw inputs are being embedded already, the most this server runs at once; "
            f"retry in {retry_after} s",
            limit=limit,
            retry_after=retry_after,
        )
        self.retry_after = retry_after
