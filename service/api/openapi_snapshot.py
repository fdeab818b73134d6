"""``python -m latent_bridge.service.api.openapi_snapshot`` rewrites the committed OpenAPI snapshots.

``openapi.json`` (a server without an API key) and ``openapi-keyed.json`` (with one: security schemes,
401/403, the admin routes) at the repository root; a test checks the served documents equal them, so an API
change is always a visible diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latent_bridge.service.api.app import create_app
from latent_bridge.service.settings import Settings

SNAPSHOT = Path(__file__).resolve().parents[2] / "openapi.json"
KEYED_SNAPSHOT = SNAPSHOT.with_name("openapi-keyed.json")
SNAPSHOT_KEY = "snapshot-key-not-in-the-document"  # any keys: only their presence shapes the document
SNAPSHOT_ADMIN_KEY = "snapshot-admin-key-not-in-the-document"


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for path, keys in ((SNAPSHOT, (None, None)), (KEYED_SNAPSHOT, (SNAPSHOT_KEY, SNAPSHOT_ADMIN_KEY))):
        settings = Settings(bundle=None, api_key=keys[0], admin_key=keys[1])  # type: ignore[arg-type]
        path.write_text(render(create_app(settings).openapi()))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
