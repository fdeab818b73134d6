"""The durable log of a gallery's run-time writes: append-only, fsynced before a write is acknowledged.

A bundle is immutable, so writes live beside it: ``<bundle>.writes/<modality>.log`` (the bundle folder's
resolved path, so a symlink rolled to a new bundle never mixes two bundles' writes). Each record is a
frame ``<u32 length><u32 crc32><body>``; the body is ``<u32 header length><JSON header><float32 rows>``.
The first record names the bundle and its fingerprint, so a log is never replayed onto another bundle.

At load the log is replayed in order. A frame cut short at the end of the file is a write that was never
acknowledged (the process died while writing it): it is cut off, with a warning. A damaged frame
anywhere else refuses the bundle, naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from latent_bridge.service.bundle.manifest import BundleError

log = logging.getLogger(__name__)
FRAME = struct.Struct("<II")
HEADER_LENGTH = struct.Struct("<I")
WRITES_SUFFIX = ".writes"
Op = Literal["open", "upsert", "delete"]


def writes_dir(bundle_dir: Path) -> Path:
    """Where a bundle's run-time writes live: a folder beside the bundle's real (resolved) path."""
    real = Path(bundle_dir).resolve()
    return real.with_name(real.name + WRITES_SUFFIX)


@dataclass(frozen=True)
class Record:
    op: Op
    ids: list[str] = field(default_factory=list)
    payload: list[dict[str, Any]] | None = None
    vectors: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def encode(record: Record) -> bytes:
    header: dict[str, Any] = {"op": record.op, "ids": record.ids, **record.meta}
    if record.payload is not None:
        header["payload"] = record.payload
    rows = b""
    if record.vectors is not None:
        header["shape"] = list(record.vectors.shape)
        rows = np.ascontiguousarray(record.vectors, dtype="<f4").tobytes()
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    body = HEADER_LENGTH.pack(len(head)) + head + rows
    return FRAME.pack(len(body), zlib.crc32(body)) + body


def decode(body: bytes) -> Record:
    (length,) = HEADER_LENGTH.unpack_from(body)
    header = json.loads(body[HEADER_LENGTH.size : HEADER_LENGTH.size + length])
    vectors = None
    if "shape" in header:
        rows = body[HEADER_LENGTH.size + length :]
        vectors = np.frombuffer(rows, dtype="<f4").astype(np.float32).reshape(header.pop("shape"))
    op, ids, payload = header.pop("op"), header.pop("ids"), header.pop("payload", None)
    return Record(op=op, ids=ids, payload=payload, vectors=vectors, meta=header)


def read_records(path: Path) -> Iterator[tuple[Record, int]]:
    """Each whole record and the offset just past it; a torn last frame ends the log, damage elsewhere
    raises ``BundleError``."""
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        if offset + FRAME.size > len(data):
            return  # torn header of the last frame
        length, crc = FRAME.unpack_from(data, offset)
        end = offset + FRAME.size + length
        if end > len(data):
            return  # torn body of the last frame
        body = data[offset + FRAME.size : end]
        if zlib.crc32(body) != crc:
            if end == len(data):
                return  # the last frame, half on disk
            raise BundleError(f"{path}: damaged record at byte {offset} (checksum mismatch)")
        try:
            record = decode(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{path}: unreadable record at byte {offset} ({exc})") from exc
        yield record, end
        offset = end


class WriteLog:
    """One gallery's log: ``append`` returns once the record is on disk (written and fsynced)."""

    def __init__(self, path: Path, bundle: str, fingerprint: str, repair: bool = True) -> None:
        self.path = path
        self.repair = repair  # cut a torn tail off; a reader beside the server (compaction) must not
        self.bundle = bundle
        self.fingerprint = fingerprint
        self.records = 0
        self._fd: int | None = None
        self._lock = threading.Lock()

    def replay(self) -> Iterator[Record]:
        """The logged writes in order (the opening record checked, not yielded); cuts off a torn tail."""
        if not self.path.exists():
            return
        good = 0
        for record, end in read_records(self.path):
            if good == 0:
                self._check_opening(record)
            else:
                self.records += 1
                yield record
            good = end
        size = self.path.stat().st_size
        if good < size and self.repair:
            log.warning("%s: cutting off %d bytes of an unacknowledged write", self.path, size - good)
            with self.path.open("r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())

    def _check_opening(self, record: Record) -> None:
        if record.op != "open" or record.meta.get("fingerprint") != self.fingerprint:
            raise BundleError(
                f"{self.path}: written for bundle {record.meta.get('bundle')!r} "
                f"({record.meta.get('fingerprint')}), not this one ({self.bundle}, {self.fingerprint})"
            )

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if fresh:
                opening = Record("open", meta={"bundle": self.bundle, "fingerprint": self.fingerprint})
                os.write(self._fd, encode(opening))
                os.fsync(self._fd)
                _fsync_dir(self.path.parent)
                _fsync_dir(self.path.parent.parent)
        return self._fd

    def append(self, record: Record) -> None:
        frame = encode(record)
        with self._lock:
            fd = self._open()
            written = 0
            while written < len(frame):
                written += os.write(fd, frame[written:])
            os.fsync(fd)
            self.records += 1

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
