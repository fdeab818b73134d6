"""The generated part of a Markdown page: the text between a begin and an end marker comment, rewritten by
the benchmark that produced it (so tables are never retyped)."""

from __future__ import annotations

import re
from pathlib import Path


def replace_between(page: Path, begin: str, end: str, content: str) -> None:
    """Put ``content`` between the first ``begin`` … ``end`` markers of ``page``; the rest stays as it is."""
    text = page.read_text()
    if begin not in text or end not in text:
        raise ValueError(f"{page}: markers {begin!r} … {end!r} not found")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    page.write_text(pattern.sub(lambda _: f"{begin}\n{content}\n{end}", text, count=1))
