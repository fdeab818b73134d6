"""The durable log of a gallery's run-time writes: append-only, fsynced before a write is acknowledged.

A bundle is immutable, so writes live beside it: ``<bundle>.writes/<modality>.log`` (the bundle folder's
resolved path, so a symlink rolled to a new bundle never mixes two bundles' writes). Each record is a
frame ``<u32 length><u32 crc32><body>``; the body is ``<u32 header length><JSON header><float32 rows>``.
The first record names the bundle and its fingerprint, so a log is never replayed onto another bundle.

A cut tail looks the same as a write torn by a crash, so the log alone cannot tell a lost acknowledged
write from an unacknowledged one. Hence the *acknowledged marker* ``<modality>.log.ack``: after each record
is fsynced, the byte offset where it ends (and the count of writes) goes there, fsynced too, and only then
is the write acknowledged. Two checksummed slots, written in turn, so a torn marker write leaves the other.

At load the log is replayed in order, and the promise is:

- bytes up to the acknowledged offset must be whole records: anything else (a cut, a checksum mismatch, a
  length field running past the end) refuses the bundle, naming the file and the byte offset;
- beyond it, whole records are replayed (fsynced, never answered: they may or may not survive), and the
  torn prefix of one frame (a crash mid-write) is cut off with a warning;
- anything else beyond it (bytes that are no frame's start, a bad frame with a whole record after it)
  refuses the bundle too.

A log from before the marker existed loads as before (a clean torn tail is cut, with a warning saying a cut
acknowledged write cannot be told from it) and gets its marker at its next write.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from latent_bridge.service.bundle.manifest import BundleError

log = logging.getLogger(__name__)
FRAME = struct.Struct("<II")
HEADER_LENGTH = struct.Struct("<I")
ACK = struct.Struct("<QQI")  # acknowledged offset, writes before it, crc32 of the first 16 bytes
ACK_SUFFIX = ".ack"
WRITES_SUFFIX = ".writes"
HEADER_START = b'{"op":"'  # every body's JSON header starts so (json.dumps of a dict whose first key is op)
BODY_START = FRAME.size + HEADER_LENGTH.size  # where a frame's JSON header starts
MIN_BODY = HEADER_LENGTH.size + len(HEADER_START)
WRITE_OPS = ("upsert", "delete")
Op = Literal["open", "upsert", "delete"]


def writes_dir(bundle_dir: Path) -> Path:
    """Where a bundle's run-time writes live: a folder beside the bundle's real (resolved) path."""
    real = Path(bundle_dir).resolve()
    return real.with_name(real.name + WRITES_SUFFIX)


def ack_path(log_path: Path) -> Path:
    """The acknowledged marker beside a log."""
    return log_path.with_name(log_path.name + ACK_SUFFIX)


@dataclass(frozen=True)
class Record:
    op: Op
    ids: list[str] = field(default_factory=list)
    payload: list[dict[str, Any]] | None = None
    vectors: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ack:
    """What the marker holds: every byte of the log before ``offset`` was acknowledged (``records`` writes)."""

    offset: int
    records: int
    slot: int = 0  # the slot it was read from; the next write goes to the other


class LogDamage(BundleError):
    """A log (or its marker) that is not whole records up to its acknowledged offset plus a clean torn tail."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}, byte {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


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


# -- the acknowledged marker ---------------------------------------------------------------------------


def _pack_ack(offset: int, records: int) -> bytes:
    head = ACK.pack(offset, records, 0)[:16]
    return head + struct.pack("<I", zlib.crc32(head))


def read_ack(path: Path) -> Ack | None:
    """The newest whole slot of a log's marker; None when there is no marker (a log from before them)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) != 2 * ACK.size:
        raise LogDamage(path, 0, f"damaged acknowledged marker ({len(data)} bytes, expected {2 * ACK.size})")
    slots = []
    for slot in (0, 1):
        offset, records, crc = ACK.unpack_from(data, slot * ACK.size)
        if zlib.crc32(data[slot * ACK.size : slot * ACK.size + 16]) == crc:
            slots.append(Ack(offset, records, slot))
    if not slots:
        raise LogDamage(path, 0, "damaged acknowledged marker (no slot's checksum holds)")
    return max(slots, key=lambda a: a.offset)


def _create_ack(path: Path, offset: int, records: int) -> None:
    """Write a new marker whole or not at all (temp file, fsync, rename, fsync the folder)."""
    temp = path.with_name(path.name + ".tmp")
    with temp.open("wb") as f:
        f.write(_pack_ack(offset, records) * 2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    _fsync_dir(path.parent)


# -- reading -------------------------------------------------------------------------------------------


def _whole_end(data: bytes, offset: int) -> int | None:
    """Where the frame at ``offset`` ends if it is whole (fits in the file, checksum holds), else None."""
    if offset < 0 or offset + FRAME.size > len(data):
        return None
    length, crc = FRAME.unpack_from(data, offset)
    end = offset + FRAME.size + length
    if length < MIN_BODY or end > len(data):
        return None
    return end if zlib.crc32(data[offset + FRAME.size : end]) == crc else None


def _whole_after(data: bytes, start: int) -> int | None:
    """The first whole frame starting after ``start`` (found by its JSON header's opening bytes)."""
    hit = data.find(HEADER_START, start + 1 + BODY_START)
    while hit != -1:
        if _whole_end(data, hit - BODY_START) is not None:
            return hit - BODY_START
        hit = data.find(HEADER_START, hit + 1)
    return None


def _starts_a_frame(tail: bytes) -> bool:
    """Whether ``tail`` can be the prefix of one frame as ``encode`` writes it."""
    if len(tail) >= FRAME.size:
        (length, _) = FRAME.unpack_from(tail)
        if length < MIN_BODY:
            return False
        if len(tail) >= BODY_START:
            (head,) = HEADER_LENGTH.unpack_from(tail, FRAME.size)
            if HEADER_LENGTH.size + head > length:
                return False
    return HEADER_START.startswith(tail[BODY_START : BODY_START + len(HEADER_START)])


def _why_not_torn(data: bytes, offset: int, acked: int) -> str | None:
    """Why the bytes from ``offset`` (where no whole record starts) are damage; None for a clean torn tail:
    the prefix of one frame (or the zeros of one whose size landed before its data) past the acknowledged
    offset."""
    size = len(data)
    after = 0  # bytes after a whole-length frame whose checksum fails
    if offset + FRAME.size > size:
        problem = "the log ends inside a frame header"
    else:
        length, _ = FRAME.unpack_from(data, offset)
        end = offset + FRAME.size + length
        if length < MIN_BODY:
            problem = f"the frame claims {length} bytes, less than any record"
        elif end > size:
            problem = f"the frame claims {length} bytes, past the end of the file (byte {size})"
        else:
            problem, after = "checksum mismatch", size - end
    if offset < acked:
        if size < acked:
            return f"{problem}; writes were acknowledged up to byte {acked}: acknowledged writes lost"
        return f"{problem}, inside the acknowledged part (up to byte {acked})"
    follows = _whole_after(data, offset)
    if follows is not None:
        return f"{problem}, but a whole record follows at byte {follows}"
    tail = data[offset:]
    if not tail.strip(b"\0"):
        return None
    if after:
        return f"{problem}, and {after} bytes follow it"
    if not _starts_a_frame(tail):
        return f"{size - offset} bytes that are not a record (appended to the log?)"
    return None


class Scan:
    """One pass over a log: its whole records in order, checked against the marker and the bundle.

    Iterating yields ``(record, start, end)`` for every whole record, the opening one included, and raises
    ``LogDamage`` at the first damage. Afterwards ``end`` is where the whole records end and ``torn`` how
    many bytes after it are the torn tail of an unacknowledged write."""

    def __init__(self, path: Path, ack: Ack | None, fingerprint: str | None = None, bundle: str = "") -> None:
        self.path = path
        self.ack = ack
        self.fingerprint = fingerprint
        self.bundle = bundle
        self.data = path.read_bytes()  # after the marker was read: a writer beside us only moves it forward
        self.end = 0
        self.torn = 0

    def __iter__(self) -> Iterator[tuple[Record, int, int]]:
        data, acked = self.data, 0 if self.ack is None else self.ack.offset
        offset, index = 0, 0
        while offset < len(data):
            end = _whole_end(data, offset)
            if end is None:
                reason = _why_not_torn(data, offset, acked)
                if reason is not None:
                    raise LogDamage(self.path, offset, reason)
                self.torn = len(data) - offset
                return
            if offset < acked < end:
                raise LogDamage(self.path, offset,
                                f"the acknowledged offset {acked} falls inside this record")
            try:
                record = decode(data[offset + FRAME.size : end])
            except (ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
                raise LogDamage(self.path, offset, f"unreadable record ({exc})") from exc
            self._check(record, index, offset)
            yield record, offset, end
            offset, index = end, index + 1
            self.end = end
        if offset < acked:
            raise LogDamage(self.path, offset, f"the log ends here, but writes were acknowledged up to byte "
                                               f"{acked}: acknowledged writes lost")

    def _check(self, record: Record, index: int, offset: int) -> None:
        if index == 0:
            if record.op != "open":
                raise LogDamage(self.path, 0, f"the first record is a {record.op!r}, not the opening one")
            if self.fingerprint is not None and record.meta.get("fingerprint") != self.fingerprint:
                raise LogDamage(self.path, 0, f"written for bundle {record.meta.get('bundle')!r} "
                                f"({record.meta.get('fingerprint')}), not this one ({self.bundle}, {self.fingerprint})")
            if record.meta.get("ack") and self.ack is None:
                raise LogDamage(self.path, 0, f"its acknowledged marker {ack_path(self.path).name} is missing")
        elif record.op not in WRITE_OPS:
            raise LogDamage(self.path, offset, f"a {record.op!r} record after the opening one")


def _scan(path: Path, fingerprint: str | None = None, bundle: str = "") -> Scan | None:
    """A scan of the log at ``path`` (marker read first); None when neither holds anything."""
    ack = read_ack(ack_path(path))
    if not path.exists():
        if ack is not None and ack.offset > 0:
            raise LogDamage(path, 0, f"missing, but writes were acknowledged up to byte {ack.offset}")
        return None
    return Scan(path, ack, fingerprint, bundle)


@dataclass
class LogReport:
    """What ``latent-bridge writelog check`` prints: a log's contents up to its first damage."""

    path: Path
    size: int = 0
    end: int = 0  # where its whole records (up to the first damage) end
    records: int = 0  # writes, the opening record not counted
    ops: Counter[str] = field(default_factory=Counter)
    ids: int = 0
    opening: dict[str, Any] = field(default_factory=dict)
    ack: Ack | None = None
    torn: int = 0  # bytes a start cuts off as a torn unacknowledged write
    damage: LogDamage | None = None


def inspect_log(path: Path, fingerprint: str | None = None) -> LogReport:
    """Read a log as a start would, without changing it; damage is reported, not raised."""
    report = LogReport(path)
    try:
        scan = _scan(path, fingerprint)
        if scan is None:
            return report
        report.ack, report.size = scan.ack, len(scan.data)
        for record, _, end in scan:
            if record.op == "open":
                report.opening = dict(record.meta)
            else:
                report.records += 1
                report.ops[record.op] += 1
                report.ids += len(record.ids)
            report.end = end
        report.torn = scan.torn
    except LogDamage as damage:
        report.damage = damage
    return report


def salvage(path: Path, out: Path, fingerprint: str | None = None) -> LogReport:
    """Copy the whole records of ``path`` up to its first damage (or torn tail) into a new log ``out`` with its
    own marker; ``path`` is left as it is. Never overwrites: the operator moves the result into place."""
    out = Path(out)
    if out.resolve() == Path(path).resolve():
        raise BundleError(f"{out}: repair writes a new log; give another path than the damaged one")
    for target in (out, ack_path(out)):
        if target.exists() or target.is_symlink():
            raise BundleError(f"{target}: already exists; repair never overwrites a file")
    report = inspect_log(path, fingerprint)
    if not report.opening:
        reason = report.damage or f"{path}: no readable opening record"
        raise BundleError(f"nothing to salvage: {reason}")
    data = Path(path).read_bytes()[: report.end]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _create_ack(ack_path(out), len(data), report.records)
    return report


# -- the log -------------------------------------------------------------------------------------------


class WriteLog:
    """One gallery's log: ``append`` returns once the record and the marker saying so are on disk."""

    def __init__(self, path: Path, bundle: str, fingerprint: str, repair: bool = True) -> None:
        self.path = path
        self.ack_path = ack_path(path)
        self.repair = repair  # cut a torn tail off; a reader beside the server (compaction) must not
        self.bundle = bundle
        self.fingerprint = fingerprint
        self.records = 0
        self.size = 0  # where the last whole record ends
        self._replayed = False
        self._slot = 1  # the marker slot the next acknowledgement overwrites (the older one)
        self._fd: int | None = None
        self._ack_fd: int | None = None
        self._broken: str | None = None  # why appends are refused: a failed write could not be undone
        self._lock = threading.Lock()

    def replay(self) -> Iterator[Record]:
        """The logged writes in order (the opening record checked, not yielded); cuts off a torn tail."""
        self._replayed = True
        scan = _scan(self.path, self.fingerprint, self.bundle)
        if scan is None:
            return
        if scan.ack is not None:
            self._slot = 1 - scan.ack.slot
        for record, _, end in scan:
            if record.op != "open":
                self.records += 1
                yield record
            self.size = end
        if scan.ack is None:
            log.warning("%s: no acknowledged marker (a log from before them): a cut tail cannot be told from "
                        "an unacknowledged write; the marker is added at the next write", self.path)
        if scan.torn and self.repair:
            log.warning("%s: cutting off %d bytes of an unacknowledged write at byte %d", self.path, scan.torn,
                        scan.end)
            with self.path.open("r+b") as f:
                f.truncate(scan.end)
                os.fsync(f.fileno())

    def _open(self) -> tuple[int, int]:
        if not self._replayed:
            for _ in self.replay():
                pass
        if self._fd is None or self._ack_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.ack_path.exists():  # before the opening record, which says the log has a marker
                _create_ack(self.ack_path, self.size, self.records)
                _fsync_dir(self.path.parent.parent)
                self._slot = 1
            self._ack_fd = os.open(self.ack_path, os.O_WRONLY)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if self.size == 0:
                opening = encode(Record("open", meta={"bundle": self.bundle, "fingerprint": self.fingerprint,
                                                      "ack": True}))
                os.ftruncate(self._fd, 0)  # a torn opening record a read-only scan left
                os.write(self._fd, opening)
                os.fsync(self._fd)
                _fsync_dir(self.path.parent)
                self.size = len(opening)
        return self._fd, self._ack_fd

    def append(self, record: Record) -> None:
        """Log one write: the frame, fsync, the marker, fdatasync; on a failure both are as they were."""
        frame = encode(record)
        with self._lock:
            if self._broken is not None:
                raise OSError(f"{self.path}: writes stopped ({self._broken}); restart to replay the log")
            fd, ack_fd = self._open()
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(frame):
                    written += os.write(fd, frame[written:])
                os.fsync(fd)
                end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: the end of this frame
                self._acknowledge(ack_fd, end, self.records + 1)
            except OSError:
                self._undo(fd, ack_fd, start)
                raise
            self.records += 1
            self.size = end

    def _acknowledge(self, ack_fd: int, offset: int, records: int) -> None:
        os.pwrite(ack_fd, _pack_ack(offset, records), self._slot * ACK.size)
        os.fdatasync(ack_fd)  # the marker's size never changes: its data is all there is to flush
        self._slot = 1 - self._slot

    def _undo(self, fd: int, ack_fd: int, start: int) -> None:
        """After a failed append: the marker back to ``start``, then the log cut back to it, so the frame
        never reads as acknowledged nor leaves bytes for the next one to follow; else stop appending."""
        try:
            os.pwrite(ack_fd, _pack_ack(start, self.records), 0)
            os.pwrite(ack_fd, _pack_ack(start, self.records), ACK.size)
            os.fdatasync(ack_fd)
            os.ftruncate(fd, start)
            os.fsync(fd)
        except OSError as exc:
            self._broken = f"a failed write could not be undone: {exc}"
            log.error("%s: %s", self.path, self._broken)

    def close(self) -> None:
        with self._lock:
            for fd in (self._fd, self._ack_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._ack_fd = None


def _fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe(report: LogReport) -> list[str]:
    """The lines ``latent-bridge writelog check`` prints for one log."""
    if not report.size and report.damage is None and report.ack is None:
        return [f"{report.path}: no write log"]
    ops = ", ".join(f"{op} {n}" for op, n in sorted(report.ops.items())) or "none"
    lines = [
        f"{report.path}: {'DAMAGED' if report.damage else 'intact'}",
        f"  bundle {report.opening.get('bundle')!r} (fingerprint {report.opening.get('fingerprint')})",
        f"  {report.records} writes ({ops}), {report.ids} ids; whole records end at byte {report.end} "
        f"of {report.size}",
    ]
    if report.ack is None:
        lines.append("  no acknowledged marker (a log from before them): a cut tail cannot be told from an "
                     "unacknowledged write")
    else:
        lines.append(f"  acknowledged up to byte {report.ack.offset} ({report.ack.records} writes)")
    if report.torn:
        lines.append(f"  a torn unacknowledged write: {report.torn} bytes at byte {report.end}, cut off at the "
                     "next start")
    if report.damage is not None:
        lines.append(f"  first damage at byte {report.damage.offset}: {report.damage.reason}")
    return lines
