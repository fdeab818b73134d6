"""GET /docs: Swagger UI served from this process (its assets come from the ``fastapi-offline`` package,
MIT, which vendors Swagger UI, Apache-2.0), so the page works offline and behind a firewall.

With an API key set, the page, its assets and ``/openapi.json`` stay open (they describe the API, they
hold no data); "Authorize" takes the key and "Try it out" sends it, and it persists across reloads.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS = "/docs"
ASSETS = "/docs/assets"
ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
JS, CSS, FAVICON = f"{ASSETS}/swagger-ui-bundle.js", f"{ASSETS}/swagger-ui.css", f"{ASSETS}/favicon.png"
DOCS_PATHS = frozenset({DOCS, JS, CSS, FAVICON, "/openapi.json"})
UI_PARAMETERS = {"persistAuthorization": True, "tryItOutEnabled": True, "displayRequestDuration": True}


def install_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=JS,
            swagger_css_url=CSS,
            swagger_favicon_url=FAVICON,
            swagger_ui_parameters=UI_PARAMETERS,
        )
