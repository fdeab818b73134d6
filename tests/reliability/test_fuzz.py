"""Contract fuzzing: schemathesis drives the app from its own OpenAPI document, with and without an API
key. Every response must be documented, match its declared schema and content type, and none may be a
5xx. Schema-valid requests may still be refused (4xx): modality names, dimensions and the limits are
the bundle's and the settings', not the schema's, so schemathesis' positive-data-acceptance check is
off. Bounded: a few dozen examples per operation, no deadline (the machine is shared), no example
database (nothing written into the repository)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.loader import load_bundle
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from testsettings import ADMIN_KEY, KEYS, settings_for

pytestmark = pytest.mark.slow
EXAMPLES = 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _app(bundle: Path, **overrides: object) -> FastAPI:
    return create_app(settings_for(bundle, **overrides), bundle=load_bundle(bundle))


@pytest.fixture(scope="module")
def open_schema(bundle_one: Path) -> Iterator[schemathesis.BaseSchema]:
    yield schemathesis.openapi.from_asgi("/openapi.json", _app(bundle_one))


@pytest.fixture(scope="module")
def keyed_schema(bundle_one: Path) -> Iterator[schemathesis.BaseSchema]:
    app = _app(bundle_one, **KEYS)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"x-api-key": ADMIN_KEY})
    yield schema


def operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(schema: schemathesis.BaseSchema, mode: GenerationMode, headers: dict[str, str] | None = None) -> None:
    """Every operation, ``EXAMPLES`` cases each; the first failing case fails the test (shrunk by hypothesis).

    (schemathesis' own pytest plugin does not run under this pytest, so the loop is spelled out.)"""
    for operation in operations(schema):

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case) -> None:
            # explicit headers: the ignored-auth check replays the case without them and with wrong keys
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:  # nothing to negate: no parameters and no body
            assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_open_api_keeps_its_contract(open_schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    assert len(operations(open_schema)) == 13
    fuzz(open_schema, mode)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_keyed_api_keeps_its_contract(keyed_schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    assert "POST /admin/reload" in {op.label for op in operations(keyed_schema)}
    fuzz(keyed_schema, mode, headers={"X-API-Key": ADMIN_KEY})  # the scheme's spelling
