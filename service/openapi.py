"""The OpenAPI document: FastAPI's, with every error answered as problem+json only, and its snapshot.

``python -m latent_bridge.service.openapi`` rewrites ``openapi.json`` at the repository root; a test checks the served
document equals that committed snapshot, so an API change is always a visible diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from latent_bridge.service.auth import OPEN_PATHS, admin_scoped
from latent_bridge.service.errors import PROBLEM_MEDIA_TYPE
from latent_bridge.service.responses import DESCRIPTIONS

SNAPSHOT = Path(__file__).resolve().parents[1] / "openapi.json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
TIMED_OPERATIONS = frozenset({"translate", "retrieve_by_id", "retrieve_by_vectors"})
SECURITY_SCHEMES: dict[str, Any] = {
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "HTTPBearer": {"type": "http", "scheme": "bearer"},
}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _problem_only(document: dict[str, Any]) -> dict[str, Any]:
    """Errors are rendered by ``latent_bridge.service.errors`` as problem+json, whatever FastAPI assumes by default."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if not status.isdigit() or int(status) < 400:
                    continue
                response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
                if status == "422" and response.get("description") == "Validation Error":
                    response["description"] = "Invalid input: a schema violation (the body lists each error)."
    schemas = document.get("components", {}).get("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return document


def _error(status: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}}


def _guards(document: dict[str, Any], keyed: bool) -> dict[str, Any]:
    """Document what the middleware answers before any route runs: 413 for a body over the limit, 504
    past the deadline on the routes that run models, and with an API key 401/403 and the schemes."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("413", _error(413))
            if operation.get("operationId") in TIMED_OPERATIONS:
                responses.setdefault("504", _error(504))
            if (keyed or admin_scoped(method.upper(), path)) and path not in OPEN_PATHS:
                responses.setdefault("401", _error(401))
                responses.setdefault("403", _error(403))
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            operation["responses"] = dict(sorted(responses.items()))
    if keyed or any(admin_scoped(m.upper(), p) for p, ops in document.get("paths", {}).items() for m in ops):
        document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    return document


def install_openapi(app: FastAPI, keyed: bool = False) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = _guards(_problem_only(document), keyed)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    from latent_bridge.service.app import create_app
    from latent_bridge.service.settings import Settings

    document = create_app(Settings(bundle=None, api_key=None)).openapi()
    SNAPSHOT.write_text(render(document))
    print(f"wrote {SNAPSHOT}")


if __name__ == "__main__":
    main()
