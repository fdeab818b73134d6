"""The one check of a problem+json answer, for TestClient and httpx responses alike."""

from __future__ import annotations

from typing import Any, Protocol

from latent_bridge.service.api.schemas import Problem


class Response(Protocol):
    status_code: int
    text: str

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


def problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    """Assert ``response`` is the problem ``slug`` with ``status``, well formed; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    Problem.model_validate(body)
    assert body["type"] == f"urn:latent-bridge:problem:{slug}"
    assert body["status"] == status and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body
