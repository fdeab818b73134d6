"""GET /: the search page, one static HTML file with its script inline (no build step).

It is open even when the server has an API key: it holds no data, and the key is typed into the page,
which sends it with every API call it makes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter()
PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"
PAGE_PATHS = frozenset({"/"})


@cache
def page() -> bytes:
    return PAGE.read_bytes()


@router.get("/", include_in_schema=False)
async def search_page() -> HTMLResponse:
    return HTMLResponse(page(), headers={"cache-control": "no-cache"})
