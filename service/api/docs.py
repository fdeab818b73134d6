"""GET /docs: Swagger UI served from this process (its assets come from the ``fastapi-offline`` package,
MIT, which vendors Swagger UI, Apache-2.0), so the page works offline and behind a firewall.

With an API key set, the page, its assets and ``/openapi.json`` stay open (they describe the API, they
hold no data); "Authorize" takes the key and "Try it out" sends it. The key is kept in the page's memory
only, never in the browser's localStorage (``persistAuthorization`` off): a key typed once, the admin key
included, must not stay readable on that machine after the tab is closed. The page's
Content-Security-Policy allows its one inline script by hash, and scripts, styles and images from this
server only (the validator badge, which would call swagger.io, is off).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from latent_bridge.service.api.headers import csp, inline_hashes
from starlette.responses import HTMLResponse

DOCS = "/docs"
ASSETS = "/docs/assets"
ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
JS, CSS, FAVICON = f"{ASSETS}/swagger-ui-bundle.js", f"{ASSETS}/swagger-ui.css", f"{ASSETS}/favicon.png"
DOCS_PATHS = frozenset({DOCS, JS, CSS, FAVICON, "/openapi.json"})
UI_PARAMETERS = {
    "persistAuthorization": False,
    "tryItOutEnabled": True,
    "displayRequestDuration": True,
    "validatorUrl": None,
}


def docs_csp(html: str) -> str:
    """Swagger UI's policy: its bundle and inline start-up script, its styles (React sets some inline),
    its images (the stylesheet's are data: URLs), the API on this server."""
    return csp(
        {
            "default-src": ["'none'"],
            "script-src": ["'self'", *inline_hashes(html, "script")],
            "style-src": ["'self'", "'unsafe-inline'"],
            "img-src": ["'self'", "data:"],
            "font-src": ["'self'", "data:"],
            "connect-src": ["'self'"],
            "form-action": ["'self'"],
            "base-uri": ["'none'"],
            "frame-ancestors": ["'none'"],
        }
    )


def install_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=JS,
            swagger_css_url=CSS,
            swagger_favicon_url=FAVICON,
            swagger_ui_parameters=UI_PARAMETERS,
        )
        page.headers["content-security-policy"] = docs_csp(bytes(page.body).decode())
        return page
