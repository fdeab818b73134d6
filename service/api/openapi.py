"""The OpenAPI document: FastAPI's, with every error answered as problem+json only.

Its committed snapshots are written by ``service/api/openapi_snapshot.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from latent_bridge.service.api.auth import OPEN_PATHS, admin_scoped
from latent_bridge.service.api.problems import PROBLEM_MEDIA_TYPE
from latent_bridge.service.api.responses import DESCRIPTIONS

SERVERS = [{"url": "http://localhost:8000", "description": "`latent-bridge serve` or `make demo` on this machine"}]
CONTACT = {"name": "Latent Bridge maintainers"}
LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}
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


def _limits(document: dict[str, Any], max_k: int) -> dict[str, Any]:
    """The schema states this server's ``max_k`` as the maximum of every ``k``."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "k":
                    parameter["schema"]["maximum"] = max_k
    k = document.get("components", {}).get("schemas", {}).get("RetrieveRequest", {}).get("properties", {}).get("k")
    if k is not None:
        k["maximum"] = max_k
    return document


def install_openapi(app: FastAPI, keyed: bool = False, max_k: int = 100) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=SERVERS,
                contact=CONTACT,
                license_info=LICENSE,
            )
            app.openapi_schema = _limits(_guards(_problem_only(document), keyed), max_k)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
