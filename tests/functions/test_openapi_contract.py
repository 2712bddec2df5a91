"""The served OpenAPI document, held to sources other than the code that writes it.

The official OpenAPI schema (openapi-spec-validator) says it is a valid OpenAPI document; the
functions the Functions host would register say which routes and methods it must describe; the
error classes say which problem types it must name; and real answers from the functions, against
the stand-in, must validate against the schemas it documents for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs in the venv
from openapi_spec_validator import validate

import function_app  # noqa: F401 - registers every blueprint, so every error class is defined
from shared.domain.errors import PROBLEM_BASE, OnboardingError
from tests.functions.conftest import REGISTERED, Api, body_of

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ONBOARD_PATH = "/tenants/{tenantId}/integrations/{integration}"


async def served(api: Api) -> dict[str, Any]:
    response = await api.call("openapi", "GET", "openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document: dict[str, Any] = body_of(response)
    return document


def registered_routes() -> set[tuple[str, str]]:
    """(path under /api, method) of every HTTP-triggered function, as the Functions host indexes them."""
    routes = set()
    for function in REGISTERED:
        trigger = function.get_trigger()
        if isinstance(trigger, HttpTrigger):
            route = str(trigger.route or function.get_function_name())
            routes |= {(f"/{route}", str(getattr(m, "value", m)).lower()) for m in trigger.methods or []}
    return routes


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def every_error(cls: type[OnboardingError]) -> set[type[OnboardingError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= every_error(sub)
    return found


def assert_documented(document: dict[str, Any], path: str, method: str, response: func.HttpResponse) -> None:
    """The answer's status and content type are documented for the operation, and its body fits the schema."""
    documented = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path}: {status} is not documented ({sorted(documented)})"
    content = documented[status]["content"]
    assert response.mimetype in content, f"{status}: {response.mimetype} is not documented ({sorted(content)})"
    schema = {**content[response.mimetype]["schema"], "components": document["components"]}
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(body_of(response)), key=lambda e: list(e.absolute_path))
    assert not errors, f"{method.upper()} {path} {status} does not match its documented schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )
    for header in documented[status].get("headers", {}):
        assert header in response.headers, f"{status}: the documented {header} header is missing"


async def test_the_served_document_is_valid_openapi(api: Api) -> None:
    document = await served(api)

    assert str(document["openapi"]).startswith("3.")
    validate(document)  # the official OpenAPI 3.0/3.1 schema, chosen by the document's version


async def test_the_served_document_describes_exactly_the_registered_routes(api: Api) -> None:
    document = await served(api)
    described = {
        (path, method) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    }

    assert registered_routes(), "the app registers HTTP functions"
    assert described == registered_routes()


async def test_the_served_document_names_every_problem_type_the_code_can_raise(api: Api) -> None:
    document = await served(api)
    listed = {value for key, values in walk(document) if key == "enum" for value in values}
    described = " ".join(str(value) for key, value in walk(document) if key == "description")
    raised = {error.problem_type for error in every_error(OnboardingError) if error.problem_type}

    missing = {name for name in raised if PROBLEM_BASE + name not in listed and name not in described}
    assert raised and missing == set()


async def test_real_answers_validate_against_the_documented_schemas(api: Api) -> None:
    document = await served(api)
    tenant = api.stand_in.home_tenant_id

    missing = await api.get(tenant, "sentinel")  # nothing registered yet
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert_documented(document, ONBOARD_PATH, "get", missing)

    created = await api.put(tenant, "sentinel")
    assert created.status_code == 201
    assert_documented(document, ONBOARD_PATH, "put", created)

    read = await api.get(tenant, "sentinel")
    assert read.status_code == 200
    assert_documented(document, ONBOARD_PATH, "get", read)
