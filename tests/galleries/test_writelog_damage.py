"""The write log's promise: up to the acknowledged offset only whole records, else the bundle is refused naming
the file and the byte; past it whole records are replayed and one torn frame is cut off; nothing else."""

from __future__ import annotations

import logging
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gallerycorpus import API_KEY, CORPUS_ROWS, settings_for
from latent_bridge.cli import main
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import BundleError
from latent_bridge.service.galleries import writelog
from latent_bridge.service.galleries.writelog import (
    FRAME,
    Record,
    WriteLog,
    ack_path,
    encode,
    read_ack,
    writes_dir,
)

FINGERPRINT = "f" * 16
WRITES = 20
KEYED = {"X-API-Key": API_KEY}


def record(i: int) -> Record:
    vectors = np.full((1, 4), i, np.float32)
    return Record("upsert", [f"id-{i}"], [{"n": i}], vectors)


def write_log(path: Path, writes: int = WRITES) -> WriteLog:
    log = WriteLog(path, "b", FINGERPRINT)
    for i in range(writes):
        log.append(record(i))
    log.close()
    return log


def starts(path: Path) -> list[int]:
    """Where each frame of an undamaged log starts (the opening record's at 0)."""
    data, offset, found = path.read_bytes(), 0, []
    while offset < len(data):
        found.append(offset)
        offset += FRAME.size + FRAME.unpack_from(data, offset)[0]
    return found


def replayed(path: Path) -> list[str]:
    return [r.ids[0] for r in WriteLog(path, "b", FINGERPRINT).replay()]


def refused_at(path: Path, offset: int, words: str) -> None:
    """Replay refuses naming the log and the byte, and leaves the log as it was."""
    before = path.read_bytes()
    with pytest.raises(BundleError, match=re.escape(f"{path}, byte {offset}: ")) as caught:
        replayed(path)
    assert words in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
    assert path.read_bytes() == before


def drop_marker(path: Path) -> None:
    """Make ``path`` a log from before markers: its opening record without the flag, no marker file."""
    data = path.read_bytes()
    opening = encode(Record("open", meta={"bundle": "b", "fingerprint": FINGERPRINT}))
    path.write_bytes(opening + data[starts(path)[1] :])
    ack_path(path).unlink()


@pytest.mark.parametrize("legacy", [False, True], ids=["marker", "no-marker"])
def test_a_length_field_inflated_mid_log_refuses(tmp_path: Path, legacy: bool) -> None:
    """Attack row 7: frame 10's length set to 2**31-1 was taken for a torn tail and 10 writes cut off."""
    path = tmp_path / "m.log"
    write_log(path)
    if legacy:
        drop_marker(path)
    at = starts(path)[10]
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, at, 2**31 - 1)
    path.write_bytes(bytes(data))
    refused_at(path, at, "claims 2147483647 bytes, past the end of the file")


@pytest.mark.parametrize("legacy", [False, True], ids=["marker", "no-marker"])
def test_a_checksum_mismatch_mid_log_refuses(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "m.log"
    write_log(path)
    if legacy:
        drop_marker(path)
    at = starts(path)[7]
    data = bytearray(path.read_bytes())
    data[at + FRAME.size + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    refused_at(path, at, "checksum mismatch")


@pytest.mark.parametrize("cut", [5, "frame"])
def test_a_cut_within_the_acknowledged_part_refuses(tmp_path: Path, cut: int | str) -> None:
    """Attack row 8: the last acknowledged write, 5 bytes short (or gone whole), was dropped as unacknowledged."""
    path = tmp_path / "m.log"
    write_log(path)
    last = starts(path)[-1]
    size = path.stat().st_size
    assert read_ack(ack_path(path)) == writelog.Ack(size, WRITES, read_ack(ack_path(path)).slot)  # type: ignore[union-attr]
    with path.open("r+b") as f:
        f.truncate(size - 5 if cut == 5 else last)
    refused_at(path, last, f"writes were acknowledged up to byte {size}: acknowledged writes lost")


def test_a_torn_write_beyond_the_acknowledged_part_is_cut_off_exactly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash mid-append: the frame's first bytes are on disk, the marker was never moved."""
    path = tmp_path / "m.log"
    write_log(path)
    acknowledged = path.stat().st_size
    with path.open("ab") as f:
        f.write(encode(record(99))[:40])
    with caplog.at_level(logging.WARNING):
        assert replayed(path) == [f"id-{i}" for i in range(WRITES)]
    assert path.stat().st_size == acknowledged
    assert "cutting off 40 bytes of an unacknowledged write" in caplog.text


def test_a_whole_unacknowledged_record_is_replayed_then_a_torn_one_cut(tmp_path: Path) -> None:
    """Fsynced, never answered (the crash came before the marker): it may survive, so it does."""
    path = tmp_path / "m.log"
    write_log(path)
    whole = encode(record(98))
    with path.open("ab") as f:
        f.write(whole + b"\0" * 30)  # then a frame whose size landed but not its bytes
    acknowledged = path.stat().st_size - len(whole) - 30
    assert replayed(path)[-1] == "id-98"
    assert path.stat().st_size == acknowledged + len(whole)


def test_appended_garbage_refuses(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    write_log(path)
    end = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\xde\xad\xbe\xef" * 16)
    refused_at(path, end, "not a record")


def test_another_log_appended_refuses(tmp_path: Path) -> None:
    path, other = tmp_path / "m.log", tmp_path / "other.log"
    write_log(path)
    write_log(other, writes=2)
    end = path.stat().st_size
    with path.open("ab") as f:
        f.write(other.read_bytes())
    refused_at(path, end, "'open' record")


def test_a_missing_marker_refuses_a_log_that_had_one(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    write_log(path)
    ack_path(path).unlink()
    refused_at(path, 0, "m.log.ack is missing")


def test_a_damaged_marker_refuses(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    write_log(path)
    ack_path(path).write_bytes(b"\0" * 40)
    with pytest.raises(BundleError, match=r"m\.log\.ack, byte 0: damaged acknowledged marker"):
        replayed(path)


def test_a_log_from_before_markers_loads_as_before_and_gets_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "m.log"
    write_log(path)
    drop_marker(path)
    whole = path.stat().st_size
    with path.open("ab") as f:
        f.write(encode(record(99))[:7])
    log = WriteLog(path, "b", FINGERPRINT)
    with caplog.at_level(logging.WARNING):
        assert len(list(log.replay())) == WRITES
    assert "no acknowledged marker" in caplog.text and path.stat().st_size == whole
    log.append(record(WRITES))
    log.close()
    assert read_ack(ack_path(path)) is not None and read_ack(ack_path(path)).offset == path.stat().st_size  # type: ignore[union-attr]
    assert replayed(path) == [f"id-{i}" for i in range(WRITES + 1)]


def test_a_failed_append_leaves_log_and_marker_as_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed write is answered as failed ("nothing was changed"): it must not stay in the log, where the next
    write would follow it and make it damage."""
    path = tmp_path / "m.log"
    log = write_log(path)
    size = path.stat().st_size
    fdatasync, failures = os.fdatasync, [OSError(28, "No space left on device")]

    def fails_once(fd: int) -> None:  # the marker's flush, after the frame was written and fsynced
        if failures:
            raise failures.pop()
        fdatasync(fd)

    monkeypatch.setattr(writelog.os, "fdatasync", fails_once)
    with pytest.raises(OSError, match="No space"):
        log.append(record(50))
    assert path.stat().st_size == size
    ack = read_ack(ack_path(path))
    assert ack is not None and (ack.offset, ack.records) == (size, WRITES)
    log.append(record(51))
    log.close()
    assert replayed(path)[-2:] == [f"id-{WRITES - 1}", "id-51"]


# -- the bundle and the command ------------------------------------------------------------------------


def served_writes(bundle: Path) -> Path:
    """Three writes through the API; the gallery's log."""
    with TestClient(create_app(settings_for(bundle, admin_key=API_KEY))) as client:
        for i in range(3):
            body = {"ids": [f"w-{i}"], "vectors": [[float(i + 1)] * 16]}
            assert client.put("/galleries/c/items", headers=KEYED, json=body).status_code == 200
    return writes_dir(bundle) / "c.log"


def test_a_bundle_whose_log_lost_an_acknowledged_write_is_refused(writable: Path) -> None:
    log = served_writes(writable)
    last = starts(log)[-1]
    with log.open("r+b") as f:
        f.truncate(log.stat().st_size - 5)
    with pytest.raises(BundleError, match=rf"c\.log, byte {last}: .*acknowledged writes lost"):
        load_bundle(writable)


def test_check_and_repair_over_the_command(
    writable: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = served_writes(writable)
    main(["writelog", "check", str(writable)])
    out = capsys.readouterr().out
    assert f"{log}: intact" in out and "3 writes (upsert 3), 3 ids" in out
    assert f"acknowledged up to byte {log.stat().st_size} (3 writes)" in out

    at = starts(log)[3]
    data = bytearray(log.read_bytes())
    data[at + FRAME.size + 3] ^= 0xFF
    log.write_bytes(bytes(data))
    damaged = log.read_bytes()
    with pytest.raises(SystemExit) as caught:
        main(["writelog", "check", str(writable), "--modality", "c"])
    assert caught.value.code == 2
    printed = capsys.readouterr()
    assert "DAMAGED" in printed.out and "2 writes (upsert 2)" in printed.out
    (line,) = printed.err.strip().splitlines()
    assert line.startswith(f"latent-bridge: {log}, byte {at}: checksum mismatch"), line

    out_log = tmp_path / "salvaged.log"
    main(["writelog", "repair", str(writable), "--modality", "c", "--out", str(out_log)])
    assert "2 writes" in capsys.readouterr().out
    assert log.read_bytes() == damaged  # the original is left as it was
    assert out_log.read_bytes() == damaged[:at] and read_ack(ack_path(out_log)).offset == at  # type: ignore[union-attr]
    with pytest.raises(SystemExit) as again:
        main(["writelog", "repair", str(writable), "--modality", "c", "--out", str(out_log)])
    assert again.value.code == 2 and "already exists" in capsys.readouterr().err

    os.replace(out_log, log)
    os.replace(ack_path(out_log), ack_path(log))
    main(["writelog", "check", str(writable)])
    assert f"{log}: intact" in capsys.readouterr().out
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY))) as client:
        assert client.get("/galleries/c", headers=KEYED).json()["count"] == CORPUS_ROWS + 2
