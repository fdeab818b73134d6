"""Crafted raw inputs of the attack review (issue 23), shared by tests/reliability/test_raw_input_attacks.py
and bench/soak.py --attack: each is a few bytes that once cost the server seconds, gigabytes or a socket."""

from __future__ import annotations

import struct
import zlib

SDP = b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n"
FFCONCAT = b"ffconcat version 1.0\nfile 'files/tone.wav'\n"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height (8-bit grey) over a few bytes of pixels: tiny to send."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
